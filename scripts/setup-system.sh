#!/usr/bin/env bash
# Install the Debian packages strato needs, when missing, and start the daemons its tests
# and its distributed mode use. Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(python3 python3-venv python3-dev gcc make pkg-config iproute2 rabbitmq-server
          postgresql
          # real virtual machines: libvirt + QEMU (guests run under TCG when KVM does not work)
          libvirt-daemon-system libvirt-clients libvirt-dev qemu-system-x86 qemu-utils
          dnsmasq-base e2fsprogs
          # security groups: nftables rules for the bridged traffic of each port
          nftables
          # an independent ISO 9660 reader: the config drive tests check pycdlib against it
          xorriso
          # `strato image build-tiny`: a FAT disk with syslinux, made without root or loop devices
          mtools dosfstools syslinux syslinux-common
          # GNU cpio: the tiny guest's own initramfs writer is checked against it
          cpio
          # udhcpc: the DHCP tests' client, inside a namespace the test creates
          busybox
          # the dashboard's browser tests: playwright drives Debian's Chromium
          chromium)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends \
    "${missing[@]}"
fi

bash "$(dirname "$0")/start-services.sh"
