#!/usr/bin/env bash
# Start PostgreSQL and RabbitMQ when they are not answering (there is no systemd here).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() {
  for _ in $(seq 1 120); do port_open "$1" && return 0; sleep 0.5; done
  echo "$2 did not come up on port $1" >&2; return 1
}

if ! port_open 5432; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "starting PostgreSQL $version"
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start
  wait_port 5432 PostgreSQL
fi

if ! port_open 5672; then
  echo "starting RabbitMQ"
  $SUDO rabbitmq-server -detached
  wait_port 5672 RabbitMQ
fi

# libvirt: no systemd here, so start the daemons directly when they are not running.
if command -v libvirtd >/dev/null; then
  # What udev does on an ordinary Debian host (there is no udev here): QEMU, which runs
  # as libvirt-qemu in group kvm, may open /dev/kvm. Left at root-only, libvirtd sees KVM
  # when it probes QEMU (as root) but not when it checks its cache (as libvirt-qemu), and
  # re-probes QEMU on every API call, which takes seconds each time.
  if [ -c /dev/kvm ] && getent group kvm >/dev/null \
      && [ "$(stat -c %G:%a /dev/kvm)" != "kvm:660" ]; then
    $SUDO chgrp kvm /dev/kvm
    $SUDO chmod 0660 /dev/kvm
  fi
  if ! pgrep -x virtlogd >/dev/null; then echo "starting virtlogd"; $SUDO virtlogd -d; fi
  if ! pgrep -x libvirtd >/dev/null; then
    echo "starting libvirtd"
    $SUDO libvirtd -d
    for _ in $(seq 1 60); do [ -S /var/run/libvirt/libvirt-sock ] && break; sleep 0.5; done
  fi
fi
