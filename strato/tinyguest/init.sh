#!/bin/sh
# /init of the strato tiny guest: PID 1, run by the kernel from the initramfs.
#
# It is a minimal cloud-init: it reads the OpenStack config drive (label config-2),
# names the host, configures eth0 (DHCP, else the drive's static network_data.json),
# then runs a "#!" user-data script, and turns the ACPI power button into a clean
# power-off. Every line meant for the host starts with "strato-guest: " and goes to the
# console (the serial port), where tests and operators read it. The initramfs is built
# by strato/tinyguest/build.py, which also writes /etc/modules.order (the kernel
# modules, dependencies first), /etc/udhcpc.sh, /etc/acpid.conf and /etc/acpi/power.
# TINYGUEST_RESOLV_CONF exists only for tests on a build host, which run some of these
# functions there.

export PATH=/bin
CONFIG_DRIVE_WAIT=5 # seconds to wait for the config drive to appear
NETWORK_DATA=/mnt/openstack/latest/network_data.json

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

# The static IPv4 network that network_data.json ($1) gives the NIC with MAC $2 (else
# the first link) as "address prefix gateway [dns...]", gateway "-" when there is none;
# nothing when there is no such network. It reads the layout strato's config drive
# writes (one key per line, a network's address and netmask before its routes), not
# any JSON: path[] holds the keys of the lists and objects open at each depth.
network_data_ipv4() {
    awk -v mac="$2" '
        function prefix(mask, octets, i, o, bits) {
            split(mask, octets, ".")
            for (i = 1; i <= 4; i++)
                for (o = octets[i] + 0; o >= 128; o = (o - 128) * 2) bits++
            return bits + 0
        }
        {
            sub(/^[ \t]+/, ""); sub(/,?[ \t\r]*$/, "")
            key = ""
            if (match($0, /^"[^"]*": /)) {
                key = substr($0, 2, RLENGTH - 4)
                $0 = substr($0, RLENGTH + 1)
            }
        }
        $0 == "{" || $0 == "[" {
            path[++depth] = key
            if ($0 == "{" && depth == 3 && path[2] == "links") links++
            if ($0 == "{" && depth == 3 && path[2] == "networks") nets++
            next
        }
        $0 == "}" || $0 == "]" { depth--; next }
        { gsub(/"/, "") }
        depth == 3 && path[2] == "links" { link[links, key] = $0 }
        depth == 3 && path[2] == "networks" { net[nets, key] = $0 }
        depth == 5 && path[2] == "networks" && path[4] == "routes" {
            route[key] = $0
            if (key == "gateway" && route["network"] == "0.0.0.0" &&
                route["netmask"] == "0.0.0.0")
                net[nets, "gateway"] = $0
        }
        depth == 5 && path[2] == "networks" && path[4] == "services" && key == "address" {
            net[nets, "dns"] = net[nets, "dns"] " " $0
        }
        END {
            want = 1
            for (i = links; i >= 1; i--)
                if (tolower(link[i, "ethernet_mac_address"]) == tolower(mac)) want = i
            for (n = 1; n <= nets; n++) {
                if (net[n, "type"] != "ipv4" || net[n, "ip_address"] == "") continue
                if (links == 0 || net[n, "link"] != link[want, "id"]) continue
                gateway = net[n, "gateway"] == "" ? "-" : net[n, "gateway"]
                print net[n, "ip_address"], prefix(net[n, "netmask"]), gateway net[n, "dns"]
                exit
            }
        }' "$1"
}

# Give eth0 (MAC $2) the static IPv4 address, default route and DNS servers that
# network_data.json ($1) holds for it, as cloud-init would; fails if it holds none.
configure_static() {
    set -f
    set -- $(network_data_ipv4 "$1" "$2")
    set +f
    [ $# -ge 3 ] || return 1
    address=$1 prefix=$2 gateway=$3
    shift 3
    ip -4 addr flush dev eth0
    ip -4 addr add "$address/$prefix" dev eth0
    [ "$gateway" = - ] || ip -4 route add default via "$gateway" dev eth0
    if [ $# -gt 0 ]; then
        for server; do
            echo "nameserver $server"
        done >"${TINYGUEST_RESOLV_CONF:-/etc/resolv.conf}"
    fi
    say "eth0 address=$address/$prefix (static)"
}

configure_network() {
    ip link set lo up
    if [ ! -e /sys/class/net/eth0 ]; then
        say "eth0 absent"
        return
    fi
    ip link set eth0 up
    # /etc/udhcpc.sh configures the lease and reports it on the console.
    udhcpc -i eth0 -n -q -t 3 -T 1 -s /etc/udhcpc.sh >/dev/null 2>&1 && return
    say "eth0 no lease"
    [ -f "$NETWORK_DATA" ] || return
    configure_static "$NETWORK_DATA" "$(cat /sys/class/net/eth0/address)"
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

# Like cloud-init, the network is up before user data runs (it may reach other guests).
load_modules
start_acpid
if find_config_drive; then
    apply_metadata
    configure_network
    run_user_data
else
    say "uuid=unknown hostname=$(hostname) (no config drive)"
    configure_network
fi
say "ready"

# PID 1 must never exit (the kernel would panic); reap whatever gets orphaned meanwhile.
while :; do
    sleep 3600 &
    wait
done
