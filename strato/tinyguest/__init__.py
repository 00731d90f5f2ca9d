"""The tiny guest: a bootable Linux built from Debian packages for strato's own tests.

See :mod:`strato.tinyguest.build`.
"""

from strato.tinyguest.build import TinyGuest, build_tiny_guest

__all__ = ["TinyGuest", "build_tiny_guest"]
