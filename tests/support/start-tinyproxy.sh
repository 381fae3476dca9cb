#!/bin/bash
# Starts (or stops) the HTTP proxy that kubeboot lab nodes use for apt.
#
# Lab nodes can reach only their lab's bridge address (no forwarding, no NAT), so apt
# inside them goes through tinyproxy on the VM. tinyproxy binds every local address on
# PORT (lab bridges come and go, and a Listen on an address that does not exist yet
# fails), and serves only clients in ALLOW (default: the lab subnets 10.213.0.0/16) and
# loopback. A node then uses http://<its bridge address>:PORT, e.g. for the test lab
# (subnet 10.213.50.0/24): KUBEBOOT_TEST_APT_PROXY=http://10.213.50.1:3142
#
#   tests/support/start-tinyproxy.sh [start]   # idempotent; prints the env line to use
#   tests/support/start-tinyproxy.sh stop      # ends the tinyproxy it started (by PID)
#
# Env: KUBEBOOT_TINYPROXY_DIR (/var/tmp/kubeboot-tinyproxy), KUBEBOOT_TINYPROXY_PORT (3142),
#      KUBEBOOT_TINYPROXY_ALLOW (10.213.0.0/16). Needs root and `apt-get install -y tinyproxy`.
set -euo pipefail
DIR=${KUBEBOOT_TINYPROXY_DIR:-/var/tmp/kubeboot-tinyproxy}
PORT=${KUBEBOOT_TINYPROXY_PORT:-3142}
ALLOW=${KUBEBOOT_TINYPROXY_ALLOW:-10.213.0.0/16}
PIDFILE=$DIR/tinyproxy.pid

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

case ${1:-start} in
start)
  command -v tinyproxy >/dev/null || { echo "tinyproxy is not installed: apt-get install -y tinyproxy" >&2; exit 1; }
  mkdir -p "$DIR"
  if running; then
    echo "tinyproxy already running (pid $(cat "$PIDFILE")) on port $PORT"
  else
    cat > "$DIR/tinyproxy.conf" <<CONF
User nobody
Group nogroup
Port $PORT
Timeout 600
MaxClients 50
LogLevel Notice
Allow 127.0.0.1
Allow $ALLOW
ConnectPort 443
DisableViaHeader Yes
CONF
    # setsid: detach from the caller's session; the PID recorded is tinyproxy's own.
    setsid tinyproxy -d -c "$DIR/tinyproxy.conf" </dev/null >"$DIR/tinyproxy.log" 2>&1 &
    echo $! > "$PIDFILE"
    for _ in $(seq 1 50); do
      timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null && break
      running || { echo "tinyproxy exited; log:" >&2; cat "$DIR/tinyproxy.log" >&2; exit 1; }
      sleep 0.1
    done
    timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$PORT" 2>/dev/null ||
      { echo "tinyproxy does not listen on port $PORT; log: $DIR/tinyproxy.log" >&2; exit 1; }
    echo "tinyproxy running (pid $(cat "$PIDFILE")) on port $PORT for $ALLOW; log: $DIR/tinyproxy.log"
  fi
  echo "export KUBEBOOT_TEST_APT_PROXY=http://10.213.50.1:$PORT"
  ;;
stop)
  if running; then kill "$(cat "$PIDFILE")"; echo "tinyproxy stopped"; else echo "tinyproxy not running"; fi
  rm -f "$PIDFILE"
  ;;
*)
  echo "usage: $0 [start|stop]" >&2; exit 2 ;;
esac
