#!/usr/bin/env bash
# swift-s3.sh - throwaway OpenStack Swift + s3api (Debian bookworm packages) on loopback, for tests.
#
#   swift-s3.sh start <state-dir>  -> prints one JSON line: endpoint, region, credentials
#   swift-s3.sh stop  <state-dir>  -> kills everything started for <state-dir>
#
# Optional env: SWIFT_PROXY_PORT (the S3 endpoint), SWIFT_ACCOUNT_PORT, SWIFT_CONTAINER_PORT,
# SWIFT_OBJECT_PORT, SWIFT_MEMCACHE_PORT (unset = pick a free port), SWIFT_START_TIMEOUT (s, 60).
# stdout carries only the JSON line; chatter goes to stderr, server logs to <state-dir>/log/.
set -euo pipefail

PY=/usr/bin/python3 # swift lives in Debian's python; a pyenv/venv python3 on PATH can't import it
SERVERS=(account container object proxy)
PKGS=(swift swift-proxy swift-account swift-container swift-object memcached)
PORT_OVERRIDES="${SWIFT_PROXY_PORT:-}${SWIFT_ACCOUNT_PORT:-}${SWIFT_CONTAINER_PORT:-}${SWIFT_OBJECT_PORT:-}${SWIFT_MEMCACHE_PORT:-}"

die() { echo "swift-s3: $*" >&2; exit 1; }
[ $# -eq 2 ] || die "usage: $0 start|stop <state-dir>"
CMD=$1
mkdir -p "$2"
STATE=$(cd "$2" && pwd) # absolute: the servers chdir('/') once loaded

# Running and not a zombie. Our servers outlive the start script, so once dead they are
# zombies until init reaps them, and kill -0 still succeeds on zombies.
alive() { local st; st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) && [ "${st:0:1}" != Z ]; }

stop_servers() {
  local s pid pids=()
  for s in "${SERVERS[@]}" memcached; do
    [ -f "$STATE/run/$s.pid" ] || continue
    pid=$(cat "$STATE/run/$s.pid")
    rm -f "$STATE/run/$s.pid"
    # Only signal it if it is still ours (pid files go stale, pids get reused).
    grep -qF -e "$STATE/etc/$s-server.conf" -e "$STATE/run/memcached" "/proc/$pid/cmdline" 2>/dev/null || continue
    if [ "$s" = memcached ]; then
      kill -KILL "$pid" 2>/dev/null || true # it acts on SIGTERM only at its next 1 s tick; nothing to save
    else
      # Swift calls setsid() once loaded, so its pid is also its process group: kill the group
      # (belt and braces: workers = 0 forks nothing); fall back to the pid during early startup.
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    fi
    pids+=("$pid")
  done
  for _ in $(seq 50); do # up to 5 s (swift exits at once on SIGTERM), then SIGKILL
    local any=0
    for pid in "${pids[@]}"; do alive "$pid" && any=1; done
    [ $any = 0 ] && return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
}

install_swift() {
  [ "$(id -u)" = 0 ] || die "swift or memcached missing and not root; run: apt-get install ${PKGS[*]}"
  echo "swift-s3: installing ${PKGS[*]}" >&2
  local apt=(apt-get -y -q -o DPkg::Lock::Timeout=300 install --no-install-recommends "${PKGS[@]}") policy=""
  # Keep the packages from starting system-wide services (unless a policy is already in place).
  if [ ! -e /usr/sbin/policy-rc.d ]; then policy=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' >$policy; chmod +x $policy; fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2 ||
    { apt-get -q update >&2 && DEBIAN_FRONTEND=noninteractive "${apt[@]}" >&2; } || rc=$?
  [ -z "$policy" ] || rm -f "$policy"
  [ $rc = 0 ] || die "apt-get install failed"
}

# [DEFAULT] shared by the four servers.
#  user: swift drops privileges to it (default "swift", who can't write a root-owned
#    state dir), so use whoever runs us - root included.
#  workers = 0: serve from the launched process itself, no forked children to leak.
#  bind_timeout: swift retries a busy port for 30 s by default; fail faster.
#  log_udp_*: swift always adds a syslog handler (/dev/log if it exists, else UDP :514).
#    Aim it at the UDP discard port so nothing reaches syslog. The real log is the stderr
#    handler that -v enables, redirected to log/<server>.log.
common_conf() {
  cat <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $1
workers = 0
user = $(id -un)
swift_dir = $STATE/etc
devices = $STATE/srv
mount_check = false
disable_fallocate = true
bind_timeout = 5
log_udp_host = 127.0.0.1
log_udp_port = 9
EOF
}

write_configs() {
  local s port
  for s in account container object; do
    port=P_${s^^}
    { common_conf "${!port}"; printf '\n[pipeline:main]\npipeline = %s-server\n\n[app:%s-server]\nuse = egg:swift#%s\n' "$s" "$s" "$s"; } >"$STATE/etc/$s-server.conf"
  done
  { common_conf "$P_PROXY"; cat <<EOF

[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server

[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true

# tempauth needs a cache in the environment (every request is a 500 without it). S3 works
# with memcached unreachable, but then each request re-reads account/container info from
# the backends (~1.5x slower). One memcached per instance: a shared one would leak cached
# container info between instances.
[filter:cache]
use = egg:swift#memcache
memcache_servers = 127.0.0.1:$P_MEMCACHED

# S3 access key = "<account>:<user>", secret = the password. test:limited lacks .admin,
# so it gets AccessDenied on the account's buckets. (A user of another account would get
# NoSuchBucket instead: s3api gives every account its own bucket namespace.)
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
user_test_limited = limited
user_other_tester = testing2 .admin

[filter:s3api]
use = egg:swift#s3api
location = us-east-1

[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
  } >"$STATE/etc/proxy-server.conf"
}

# One attempt. Returns 0 when ready, 3 on a port clash, anything else on other failures.
start_once() {
  stop_servers # nothing from an earlier run on this state dir may linger
  rm -rf "$STATE/etc" "$STATE/srv" "$STATE/run" "$STATE/log"
  mkdir -p "$STATE/etc" "$STATE/srv/d1" "$STATE/run" "$STATE/log"

  # Pick free ports (sockets held open together so they differ) and write one-device,
  # one-replica, one-partition rings in the same python (much faster than 9 swift-ring-builder runs).
  read -r P_PROXY P_ACCOUNT P_CONTAINER P_OBJECT P_MEMCACHED < <(
    "$PY" - "$STATE/etc" "${SWIFT_PROXY_PORT:-0}" "${SWIFT_ACCOUNT_PORT:-0}" \
      "${SWIFT_CONTAINER_PORT:-0}" "${SWIFT_OBJECT_PORT:-0}" "${SWIFT_MEMCACHE_PORT:-0}" <<'EOF'
import socket, sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
socks = []
for i, p in enumerate(ports):
    if not p:
        s = socket.socket(); s.bind(('127.0.0.1', 0)); socks.append(s)
        ports[i] = s.getsockname()[1]
for s in socks: s.close()
for name, port in zip(('account', 'container', 'object'), ports[1:4]):
    b = RingBuilder(0, 1, 1)  # part_power 0, 1 replica, min_part_hours 1
    b.add_dev({'id': 0, 'region': 1, 'zone': 1, 'ip': '127.0.0.1', 'port': port,
               'device': 'd1', 'weight': 100})
    b.rebalance()
    b.get_ring().save('%s/%s.ring.gz' % (etc, name))
print(*ports)
EOF
  ) || { echo "swift-s3: could not pick ports / build rings (python3-swift broken?)" >&2; return 1; }
  write_configs || return 1

  # memcached first, so the proxy doesn't error-limit it for 60 s on its first request.
  # (-P only serves to put the state dir into its argv, so that stop can recognise it.)
  memcached -l 127.0.0.1 -p "$P_MEMCACHED" -U 0 -m 64 -u "$(id -un)" -P "$STATE/run/memcached.own-pid" \
    </dev/null >"$STATE/log/memcached.log" 2>&1 &
  disown; echo $! >"$STATE/run/memcached.pid" # disown: no "Killed" job notices from bash
  local s port
  for s in "${SERVERS[@]}"; do
    # -v adds the stderr log handler: that is how the logs end up in files.
    "swift-$s-server" "$STATE/etc/$s-server.conf" -v </dev/null >"$STATE/log/$s.log" 2>&1 &
    disown; echo $! >"$STATE/run/$s.pid"
  done

  # Ready = every port is listened on by our process and by nobody else, and a SigV2-signed
  # ListBuckets through the proxy returns 200 (proxy + s3api + tempauth + account server).
  # The ownership check matters: swift (eventlet) binds with SO_REUSEPORT, so a second
  # instance on the same port would NOT fail - the kernel would split requests between them.
  local args=()
  for s in memcached "${SERVERS[@]}"; do port=P_${s^^}; args+=("${!port}:$(cat "$STATE/run/$s.pid")"); done
  "$PY" - "${SWIFT_START_TIMEOUT:-60}" "${args[@]}" <<'EOF' >&2
import base64, email.utils, hashlib, hmac, os, sys, time, urllib.request
timeout, pairs = float(sys.argv[1]), [a.split(':') for a in sys.argv[2:]]

def listeners(port):  # inodes of listening TCP sockets on this port
    found = set()
    for f in ('/proc/net/tcp', '/proc/net/tcp6'):
        for line in open(f).readlines()[1:]:
            c = line.split()
            if c[3] == '0A' and int(c[1].rsplit(':', 1)[1], 16) == int(port):
                found.add(c[9])
    return found

def own_sockets(pid):
    found = set()
    for fd in os.listdir('/proc/%s/fd' % pid):
        try: link = os.readlink('/proc/%s/fd/%s' % (pid, fd))
        except OSError: continue
        if link.startswith('socket:['): found.add(link[8:-1])
    return found

deadline, last = time.time() + timeout, 'nothing listening yet'
while time.time() < deadline:
    try:
        for port, pid in pairs:
            try: state = open('/proc/%s/stat' % pid).read().rsplit(') ', 1)[1][0]
            except OSError: state = 'Z'
            if state == 'Z': sys.exit('swift-s3: process %s (port %s) exited during startup' % (pid, port))
            lst = listeners(port)
            if lst - own_sockets(pid):
                print('swift-s3: port %s is also listened on by another process' % port); sys.exit(3)
            if not lst: raise Exception('port %s not listening yet' % port)
        proxy = pairs[4][0]
        date = email.utils.formatdate(usegmt=True)
        sig = base64.b64encode(hmac.new(b'testing', ('GET\n\n\n%s\n/' % date).encode(), hashlib.sha1).digest()).decode()
        urllib.request.urlopen(urllib.request.Request('http://127.0.0.1:%s/' % proxy,
            headers={'Date': date, 'Authorization': 'AWS test:tester:' + sig}), timeout=5).read()
        sys.exit(0)
    except Exception as e:
        last = str(e)
    time.sleep(0.2)
sys.exit('swift-s3: not ready after %ss; last error: %s' % (timeout, last))
EOF
}

case "$CMD" in
stop) stop_servers; exit 0 ;;
start) ;;
*) die "usage: $0 start|stop <state-dir>" ;;
esac

{ command -v swift-proxy-server && command -v memcached; } >/dev/null || install_swift
# The servers always read /etc/swift/swift.conf (hash prefix/suffix, storage policies): the
# swift_dir setting only moves the rings. The Debian package ships a usable one.
[ -f /etc/swift/swift.conf ] || die "/etc/swift/swift.conf missing (reinstall the swift package)"

for attempt in 1 2 3; do
  rc=0; start_once || rc=$?
  if [ $rc = 0 ]; then
    printf '{"endpoint":"http://127.0.0.1:%s","region":"us-east-1","admin":{"accessKeyId":"test:tester","secretAccessKey":"testing"},"limited":{"accessKeyId":"test:limited","secretAccessKey":"limited"},"otherAccount":{"accessKeyId":"other:tester","secretAccessKey":"testing2"}}\n' "$P_PROXY"
    exit 0
  fi
  # A clash on picked ports means a concurrent start grabbed the same one: pick again.
  [ $rc = 3 ] && [ -z "$PORT_OVERRIDES" ] && [ $attempt -lt 3 ] || break
  echo "swift-s3: port clash, retrying with new ports" >&2
done
for s in memcached "${SERVERS[@]}"; do
  echo "----- $STATE/log/$s.log (last 25 lines)" >&2
  tail -n 25 "$STATE/log/$s.log" >&2 || true
done
stop_servers
exit 1
