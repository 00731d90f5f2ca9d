#!/bin/sh
# /init of the strato tiny guest: PID 1, run by the kernel from the initramfs.
#
# It is a minimal cloud-init: it reads the OpenStack config drive (label config-2),
# names the host, runs a "#!" user-data script, tries DHCP on eth0, and turns the ACPI
# power button into a clean power-off. Every line meant for the host starts with
# "strato-guest: " and goes to the console (the serial port), where tests and operators
# read it. The initramfs is built by strato/tinyguest/build.py, which also writes
# /etc/modules.order (the kernel modules, dependencies first), /etc/udhcpc.sh,
# /etc/acpid.conf and /etc/acpi/power.

export PATH=/bin
CONFIG_DRIVE_WAIT=5 # seconds to wait for the config drive to appear

/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1

say() {
    echo "strato-guest: $*"
}

# insmod every module in dependency order; one already loaded (or built in) is fine.
load_modules() {
    while read -r module; do
        out=$(insmod "$module" 2>&1) && continue
        case "$out" in
            *"File exists"*) ;;
            *) say "insmod $module failed: $out" ;;
        esac
    done </etc/modules.order
}

# Mount $1 read-only at /mnt and keep it there if it holds OpenStack metadata.
try_config_drive() {
    mount -t iso9660 -o ro "$1" /mnt 2>/dev/null || return 1
    [ -f /mnt/openstack/latest/meta_data.json ] && return 0
    umount /mnt
    return 1
}

uptime_seconds() {
    read -r up _ </proc/uptime
    echo "${up%.*}"
}

# The config drive is an IDE cdrom (/dev/sr0) or a read-only virtio disk (/dev/vdX);
# either may be probed asynchronously after its driver loads, so poll for a while.
find_config_drive() {
    deadline=$(($(uptime_seconds) + CONFIG_DRIVE_WAIT))
    while :; do
        dev=$(findfs LABEL=config-2 2>/dev/null) && try_config_drive "$dev" && return 0
        for dev in /dev/sr* /dev/vd*; do
            [ -b "$dev" ] && try_config_drive "$dev" && return 0
        done
        [ "$(uptime_seconds)" -lt "$deadline" ] || return 1
        sleep 0.1
    done
}

# The string value of "$1" in the JSON file $2 (compact or indented; plain values only).
json_string() {
    tr -d '\n' <"$2" | sed -n 's/.*"'"$1"'"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p'
}

apply_metadata() {
    meta=/mnt/openstack/latest/meta_data.json
    uuid=$(json_string uuid "$meta")
    host=$(json_string hostname "$meta")
    [ -n "$host" ] && hostname "$host"
    say "uuid=${uuid:-unknown} hostname=$(hostname)"
}

run_user_data() {
    user_data=/mnt/openstack/latest/user_data
    [ -f "$user_data" ] || return 0
    [ "$(head -c 2 "$user_data")" = "#!" ] || return 0
    cp "$user_data" /tmp/user-data
    chmod 0755 /tmp/user-data
    /tmp/user-data </dev/null
    say "user-data exit=$?"
}

configure_network() {
    ip link set lo up
    if [ ! -e /sys/class/net/eth0 ]; then
        say "eth0 absent"
        return
    fi
    ip link set eth0 up
    # /etc/udhcpc.sh configures the lease and reports it on the console.
    udhcpc -i eth0 -n -q -t 3 -T 1 -s /etc/udhcpc.sh >/dev/null 2>&1 || say "eth0 no lease"
}

# acpid reads the power button from /dev/input/event* (button + evdev modules) and runs
# /etc/acpi/power, which says "powering off" and powers off at once.
start_acpid() {
    if [ ! -e /dev/input/event0 ]; then
        say "no input device: the power button is ignored"
        return
    fi
    acpid -c /etc/acpi -a /etc/acpid.conf -l /tmp/acpid.log -p /tmp/acpid.pid
}

load_modules
start_acpid
if find_config_drive; then
    apply_metadata
    run_user_data
else
    say "uuid=unknown hostname=$(hostname) (no config drive)"
fi
configure_network
say "ready"

# PID 1 must never exit (the kernel would panic); reap whatever gets orphaned meanwhile.
while :; do
    sleep 3600 &
    wait
done
