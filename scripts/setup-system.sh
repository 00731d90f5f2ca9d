#!/usr/bin/env bash
# Install the Debian packages strato needs, when missing, and start the daemons its tests
# and its distributed mode use. Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

PACKAGES=(python3 python3-venv python3-dev gcc make iproute2 rabbitmq-server postgresql
          qemu-utils)

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi

bash "$(dirname "$0")/start-services.sh"
