"""The libvirt driver: the only code in strato that imports libvirt."""
