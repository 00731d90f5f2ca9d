#!/bin/sh
# The tiny guest's udhcpc script: udhcpc runs it with the event as $1 and the lease in
# the environment ($interface, $ip, $mask as a prefix length, $router, $dns). It applies
# the lease and reports the address on the console, where the host reads it.
# TINYGUEST_CONSOLE and TINYGUEST_RESOLV_CONF exist only for tests on a build host.

console=${TINYGUEST_CONSOLE:-/dev/console}
resolv_conf=${TINYGUEST_RESOLV_CONF:-/etc/resolv.conf}

case "$1" in
    deconfig)
        ip -4 addr flush dev "$interface"
        ip link set "$interface" up
        ;;
    bound | renew)
        prefix=${mask:-32}
        ip -4 addr flush dev "$interface"
        ip -4 addr add "$ip/$prefix" dev "$interface"
        for gateway in $router; do
            ip -4 route add default via "$gateway" dev "$interface" && break
        done
        if [ -n "$dns" ]; then
            for server in $dns; do
                echo "nameserver $server"
            done >"$resolv_conf"
        fi
        echo "strato-guest: $interface address=$ip/$prefix" >"$console"
        ;;
esac
exit 0
