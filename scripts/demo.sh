#!/usr/bin/env bash
# The demo behind `make demo`: proxymatic's main job, for real, on this
# machine. It starts etcd, two HTTP backends registered the way registrator
# does, proxymatic-sync following etcd and proxymatic-reload running a real
# HAProxy (TCP) and nginx (virtual hosts); then sends requests through the
# proxies while a backend is added and another removed. Everything runs on
# loopback, on free ports, in a temporary directory that is removed on exit.
#
#   make demo                # build, run, stop, exit 0
#   DEMO_KEEP=1 make demo    # leave it running for a look, until Ctrl-C
#
# Needs: etcd, etcdctl, haproxy, nginx (scripts/install-deps.sh), go (to
# build the demo backend), bash. Binaries come from $BIN (default bin/).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
bin=${BIN:-$root/bin}
keep=${DEMO_KEEP:-}

step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }
say() { printf '    %s\n' "$*"; }
fail() {
	printf '\ndemo: FAILED: %s\n' "$*" >&2
	exit 1
}

for b in "$bin/proxymatic-sync" "$bin/proxymatic-reload"; do
	[ -x "$b" ] || fail "$b not built (run: make build)"
done
command -v etcd >/dev/null || fail "etcd is not installed (run: ./scripts/install-deps.sh)"
command -v etcdctl >/dev/null || fail "etcdctl is not installed (run: ./scripts/install-deps.sh)"
command -v go >/dev/null || fail "go is not on PATH (needed to build the demo backend)"

# The run directory must be reachable by nginx's workers, which drop to
# nobody when the demo runs as root; unix socket paths must stay short.
tmp=$(mktemp -d /tmp/proxymatic-demo.XXXXXX)
chmod 0755 "$tmp"
pids=()

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	step "Stopping everything"
	# Reverse order: the agent first (it stops HAProxy and nginx), etcd last.
	local i
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		kill -TERM "${pids[i]}" 2>/dev/null || true
	done
	for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
		wait "${pids[i]}" 2>/dev/null || true
	done
	if [ "$rc" -ne 0 ] && [ -d "$tmp" ]; then
		for f in "$tmp"/*.log; do
			[ -s "$f" ] || continue
			printf '\n--- last lines of %s ---\n' "${f##*/}" >&2
			tail -n 15 "$f" >&2
		done
	fi
	rm -rf "$tmp"
	if [ "$rc" -eq 0 ]; then say "done, all stopped, $tmp removed"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# free_port prints a TCP port nothing uses on this machine, read from
# /proc/net/tcp{,6} so that no extra tool is needed; taken ports are remembered.
taken=" "
free_port() {
	local p hex
	while :; do
		p=$((20000 + RANDOM % 12000))
		case $taken in *" $p "*) continue ;; esac
		hex=$(printf ':%04X' "$p")
		if ! awk -v h="$hex" 'NR > 1 && substr($2, length($2) - 4) == h { found = 1 } END { exit !found }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
			taken="$taken$p "
			echo "$p"
			return
		fi
	done
}

# http_get PORT HOST prints the body of GET / on 127.0.0.1:PORT (HTTP/1.0, no
# curl needed), or fails.
# shellcheck disable=SC2016 # the inner script expands its own arguments
http_get() {
	timeout 3 bash -c '
		exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
		printf "GET / HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n" "$2" >&3
		sed -n "/^\r\{0,1\}$/,\$p" <&3 | sed 1d
	' _ "$1" "$2"
}

# wait_for DESCRIPTION SECONDS COMMAND... retries COMMAND until it succeeds.
wait_for() {
	local what=$1 secs=$2
	shift 2
	local deadline=$((SECONDS + secs))
	until "$@" >/dev/null 2>&1; do
		[ "$SECONDS" -lt "$deadline" ] || fail "$what: not ready after ${secs}s"
		sleep 0.2
	done
}

status_ok() { "$root/deploy/healthcheck.sh" "127.0.0.1:$1"; }

# serves PORT HOST NAME: one request through the proxy reaches backend NAME.
# Several tries, as the proxies balance round robin.
reaches() {
	local i out
	for i in 1 2 3 4 5 6; do
		out=$(http_get "$1" "$2") || continue
		case $out in *"hello from $3 "*) return 0 ;; esac
	done
	return 1
}

# never_reaches PORT HOST NAME: twelve requests in a row avoid backend NAME.
never_reaches() {
	local i out
	for i in $(seq 12); do
		out=$(http_get "$1" "$2") || return 1
		case $out in *"hello from $3 "*) return 1 ;; esac
	done
}

etcd_client=$(free_port)
etcd_peer=$(free_port)
svc_port=$(free_port)
vhost_port=$(free_port)
sync_status=$(free_port)
reload_status=$(free_port)
web1=$(free_port)
web2=$(free_port)
web3=$(free_port)
etcd_url=http://127.0.0.1:$etcd_client
export ETCDCTL_API=2

step "Working in $tmp"
say "etcd on 127.0.0.1:$etcd_client, service port $svc_port (HAProxy), virtual hosts on $vhost_port (nginx)"
say "status endpoints: sync 127.0.0.1:$sync_status, reload 127.0.0.1:$reload_status"

step "Building the demo backend (deploy/demo/backend)"
go build -o "$tmp/backend" ./deploy/demo/backend

step "Starting etcd (v2 API on, as registrator writes v2 keys)"
etcd --name demo --data-dir "$tmp/etcd" \
	--listen-client-urls "$etcd_url" --advertise-client-urls "$etcd_url" \
	--listen-peer-urls "http://127.0.0.1:$etcd_peer" \
	--initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
	--initial-cluster "demo=http://127.0.0.1:$etcd_peer" \
	--enable-v2=true >"$tmp/etcd.log" 2>&1 &
pids+=($!)
wait_for "etcd" 20 etcdctl --endpoints "$etcd_url" cluster-health

start_backend() { # NAME PORT
	"$tmp/backend" -name "$1" -listen "127.0.0.1:$2" >"$tmp/$1.log" 2>&1 &
	pids+=($!)
	wait_for "backend $1" 10 http_get "$2" x
}
# register NAME PORT: the key registrator writes for container NAME
# publishing container port $svc_port on host port PORT.
register() {
	say "etcdctl set /services/web/demo-host:$1:$svc_port 127.0.0.1:$2"
	etcdctl --endpoints "$etcd_url" set "/services/web/demo-host:$1:$svc_port" "127.0.0.1:$2" >/dev/null
}
deregister() {
	say "etcdctl rm /services/web/demo-host:$1:$svc_port"
	etcdctl --endpoints "$etcd_url" rm "/services/web/demo-host:$1:$svc_port" >/dev/null
}

step "Starting two backends, web-1 on :$web1 and web-2 on :$web2, and registering them as service \"web\""
start_backend web-1 "$web1"
start_backend web-2 "$web2"
register web-1 "$web1"
register web-2 "$web2"

step "Starting proxymatic-sync (registrator source: etcd://127.0.0.1:$etcd_client/services)"
"$bin/proxymatic-sync" --registrator "etcd://127.0.0.1:$etcd_client/services" --refresh-interval 5 \
	--output "$tmp/run/services.yaml" --status-endpoint "127.0.0.1:$sync_status" >"$tmp/sync.log" 2>&1 &
pids+=($!)

step "Starting proxymatic-reload (HAProxy for TCP, nginx virtual hosts under demo.local)"
"$bin/proxymatic-reload" --services "$tmp/run/services.yaml" --run-dir "$tmp/run" \
	--haproxy --vhost-domain demo.local --vhost-port "$vhost_port" --max-connections 1000 \
	--status-endpoint "127.0.0.1:$reload_status" --shutdown-delay 0s >"$tmp/reload.log" 2>&1 &
pids+=($!)
wait_for "proxymatic-sync /status" 30 status_ok "$sync_status"
wait_for "proxymatic-reload /status" 30 status_ok "$reload_status"
say "both report 200 OK on /status"

step "services.yaml as proxymatic-sync wrote it"
sed 's/^/    | /' "$tmp/run/services.yaml"

step "Requests through HAProxy, 127.0.0.1:$svc_port"
wait_for "web through HAProxy" 20 reaches "$svc_port" x web-1
for _ in 1 2 3 4; do say "$(http_get "$svc_port" x)"; done

step "Requests through nginx, Host: web.demo.local on 127.0.0.1:$vhost_port"
wait_for "web through nginx" 20 reaches "$vhost_port" web.demo.local web-2
for _ in 1 2 3 4; do say "$(http_get "$vhost_port" web.demo.local)"; done

step "Scaling up: a third backend, web-3 on :$web3"
start_backend web-3 "$web3"
register web-3 "$web3"
start=$SECONDS
wait_for "web-3 through HAProxy" 20 reaches "$svc_port" x web-3
wait_for "web-3 through nginx" 20 reaches "$vhost_port" web.demo.local web-3
say "web-3 serves through both proxies (within $((SECONDS - start))s):"
for _ in 1 2 3; do say "$(http_get "$svc_port" x)"; done

step "Removing web-1 from etcd (its process keeps running: the proxies must stop sending it traffic)"
deregister web-1
start=$SECONDS
wait_for "web-1 gone from HAProxy" 30 never_reaches "$svc_port" x web-1
say "gone from HAProxy after $((SECONDS - start))s"
wait_for "web-1 gone from nginx" 30 never_reaches "$vhost_port" web.demo.local web-1
say "gone from nginx after $((SECONDS - start))s"
say "12 requests each through HAProxy and nginx now reach only:"
{
	for _ in $(seq 12); do http_get "$svc_port" x; done
	for _ in $(seq 12); do http_get "$vhost_port" web.demo.local; done
} | sed -n 's/^hello from \([^ ]*\) .*/\1/p' | sort | uniq -c | sed 's/^/   /'

step "services.yaml now"
sed 's/^/    | /' "$tmp/run/services.yaml"

if [ -n "$keep" ]; then
	step "DEMO_KEEP is set: leaving it running. Ctrl-C to stop and clean up."
	say "HAProxy:  curl http://127.0.0.1:$svc_port/"
	say "nginx:    curl -H 'Host: web.demo.local' http://127.0.0.1:$vhost_port/"
	say "status:   curl http://127.0.0.1:$reload_status/status   (and /metrics, /haproxy)"
	say "etcd:     ETCDCTL_API=2 etcdctl --endpoints $etcd_url set /services/web/demo-host:web-9:$svc_port 127.0.0.1:PORT"
	say "files:    $tmp (services.yaml and rendered configs in $tmp/run, logs in $tmp/*.log)"
	trap 'exit 0' INT TERM
	while :; do
		sleep 3600 &
		pids+=($!)
		wait $! || true
	done
fi

step "All steps passed"
