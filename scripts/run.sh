#!/usr/bin/env bash
# The main job: start strato in one process (embedded mode) in the background, boot the
# tiny guest as a real VM through the API, show its console, and leave strato running.
set -euo pipefail
cd "$(dirname "$0")/.."

export STRATO_DATA_DIR="${STRATO_DATA_DIR:-$PWD/.strato}"
# QEMU runs as libvirt-qemu and must reach the instance disks: keep them where it can,
# whatever directory this checkout is in (under /root it could not).
export STRATO_COMPUTE__LIBVIRT__INSTANCES_PATH="${STRATO_COMPUTE__LIBVIRT__INSTANCES_PATH:-/var/lib/strato/instances}"
LISTEN="${STRATO_API__LISTEN:-127.0.0.1:8774}"
URL="http://$LISTEN"
PIDFILE="$STRATO_DATA_DIR/strato.pid"
LOG="$STRATO_DATA_DIR/strato.log"
mkdir -p "$STRATO_DATA_DIR"

if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  echo "strato is already running (pid $(cat "$PIDFILE"))"
else
  nohup .venv/bin/strato up >"$LOG" 2>&1 &
  echo $! >"$PIDFILE"
  echo "started strato (pid $(cat "$PIDFILE")), log: $LOG"
fi

.venv/bin/strato demo --url "$URL"

cat <<EOT

strato is running (embedded mode, pid $(cat "$PIDFILE")); guests live in
$STRATO_COMPUTE__LIBVIRT__INSTANCES_PATH.
  APIs:        $URL/identity/v3  $URL/v2.1  $URL/image  $URL/networking
  Clients:     export OS_CLIENT_CONFIG_FILE=$STRATO_DATA_DIR/clouds.yaml OS_CLOUD=strato
               .venv/bin/openstack server list      (the admin user, by password)
               .venv/bin/strato demo --url $URL     (boot another tiny guest)
  Log:         $LOG
  Stop:        kill $(cat "$PIDFILE")
EOT
