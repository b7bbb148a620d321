#!/bin/sh
# docker-entrypoint.sh: the combined proxymatic image's entrypoint, a drop-in
# for `docker run meltwater/proxymatic [options]`.
#
#   docker-entrypoint.sh proxymatic-sync [flags]     exec that binary alone
#   docker-entrypoint.sh proxymatic-reload [flags]   (the sidecar images' use)
#   docker-entrypoint.sh [original options]          run both on one private
#                                                    services file
#   docker-entrypoint.sh other-command [args]        exec it (e.g. sh)
#
# In combined mode each original option goes to the binary that owns it, the
# environment variables reach both (each reads its own), SIGTERM/SIGINT/SIGHUP
# reach both, and when either exits the other is stopped and the script exits
# non-zero. See deploy/README.md.
set -u

prog=docker-entrypoint

usage() {
	cat <<'EOF'
Usage: docker run proxymatic [options]...
       docker run proxymatic proxymatic-sync [flags]     (see proxymatic-sync --help)
       docker run proxymatic proxymatic-reload [flags]   (see proxymatic-reload --help)

Runs proxymatic-sync and proxymatic-reload together on one services file.
Every option also reads its environment variable, as the original image did.

Discovery (proxymatic-sync):
  -m, --marathon=URL[,URL]      Marathon replicas                     [$MARATHON_URL]
  -c, --marathon-callback=URL   deprecated, ignored                   [$MARATHON_CALLBACK_URL]
  -r, --registrator=URL         etcd://host:port/prefix               [$REGISTRATOR_URL]
  -i, --refresh-interval=SECS   polling interval [60]                 [$REFRESH_INTERVAL]
  -e, --expose-host             keep tasks in net=host mode           [$EXPOSE_HOST]
      --group-size=N            number of proxymatic instances [1]    [$GROUP_SIZE]
      --sync-status-endpoint=A  sync's /status (off unless set)       [$SYNC_STATUS_ENDPOINT]
Proxies (proxymatic-reload):
      --haproxy                 HAProxy for TCP services, not pen     [$HAPROXY]
      --vhost-domain=DOMAIN     nginx virtual hosts under DOMAIN      [$VHOST_DOMAIN]
      --vhost-port=PORT         virtual host port [80]                [$VHOST_PORT]
      --proxy-protocol          proxy protocol on the vhost listener  [$PROXY_PROTOCOL]
      --max-connections=N       per service [8192]                    [$MAX_CONNECTIONS]
      --pen-servers=N           server slots per pen service [32]     [$PEN_SERVERS]
      --pen-clients=N           pen client table size [8192]          [$PEN_CLIENTS]
      --status-endpoint=A       /status and /metrics [0.0.0.0:9090]   [$STATUS_ENDPOINT]
      --run-dir=DIR             configs, pids, sockets                [$RUN_DIR]
      --template-dir=DIR        template overrides                    [$TEMPLATE_DIR]
      --shutdown-delay=D        TERMINATING before stopping [2s]      [$SHUTDOWN_DELAY]
      --stop-timeout=D          graceful proxy stop [10s]             [$STOP_TIMEOUT]
Both:
      --services-file=PATH      [$RUN_DIR/services.yaml]              [$SERVICES_FILE]
  -v, --verbose                 debug logging                         [$VERBOSE]
  -h, --help                    this help
The entrypoint kills what is still running $ENTRYPOINT_KILL_AFTER seconds [30]
after it asked both to stop.
EOF
}

log() { printf '%s: %s\n' "$prog" "$*" >&2; }

die_usage() {
	log "$*"
	log "see --help"
	exit 2
}

# quote prints $1 as one single-quoted shell word, for eval.
quote() {
	printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"
}

case "${1:-}" in
proxymatic-sync | proxymatic-reload)
	exec "$@"
	;;
-* | '') ;;
*)
	exec "$@"
	;;
esac

sync_args=""
reload_args=""
cli_services=""
cli_run_dir=""
sync_status_set=""
[ -n "${SYNC_STATUS_ENDPOINT:-}" ] && sync_status_set=1

while [ $# -gt 0 ]; do
	arg=$1
	shift
	hasval=""
	val=""
	case $arg in
	--)
		[ $# -eq 0 ] || die_usage "unexpected argument $(quote "$1")"
		break
		;;
	--*=*)
		name=${arg%%=*}
		val=${arg#*=}
		hasval=1
		;;
	--*)
		name=$arg
		;;
	-?*)
		# A short option: -mURL, -m URL, or a cluster of flags like -ev.
		rest=${arg#-?}
		name=${arg%"$rest"}
		case $name in
		-m | -c | -r | -i)
			if [ -n "$rest" ]; then
				val=${rest#=}
				hasval=1
			fi
			;;
		*)
			[ -n "$rest" ] && set -- "-$rest" "$@"
			;;
		esac
		;;
	*)
		die_usage "unexpected argument $(quote "$arg")"
		;;
	esac

	# to: sync, reload or both; kind: value or flag; flag: the binary's name.
	case $name in
	-m | --marathon) to=sync kind=value flag=--marathon ;;
	-c | --marathon-callback) to=sync kind=value flag=--marathon-callback ;;
	-r | --registrator) to=sync kind=value flag=--registrator ;;
	-i | --refresh-interval) to=sync kind=value flag=--refresh-interval ;;
	-e | --expose-host) to=sync kind=flag flag=--expose-host ;;
	--group-size) to=sync kind=value flag=--group-size ;;
	--sync-status-endpoint) to=sync kind=value flag=--status-endpoint sync_status_set=1 ;;
	--haproxy) to=reload kind=flag flag=--haproxy ;;
	--vhost-domain) to=reload kind=value flag=--vhost-domain ;;
	--vhost-port) to=reload kind=value flag=--vhost-port ;;
	--proxy-protocol) to=reload kind=flag flag=--proxy-protocol ;;
	--max-connections) to=reload kind=value flag=--max-connections ;;
	--pen-servers) to=reload kind=value flag=--pen-servers ;;
	--pen-clients) to=reload kind=value flag=--pen-clients ;;
	--status-endpoint) to=reload kind=value flag=--status-endpoint ;;
	--run-dir) to=reload kind=value flag=--run-dir ;;
	--template-dir) to=reload kind=value flag=--template-dir ;;
	--shutdown-delay) to=reload kind=value flag=--shutdown-delay ;;
	--stop-timeout) to=reload kind=value flag=--stop-timeout ;;
	--services-file) to=none kind=value flag=--services-file ;;
	-v | --verbose) to=both kind=flag flag=--verbose ;;
	-h | --help)
		usage
		exit 0
		;;
	--once | --dry-run | --output-dir | --validate | -o | --output | -s | --services)
		die_usage "$name is not a combined-mode option; run \`proxymatic-sync ...\` or \`proxymatic-reload ...\` as the first argument for it"
		;;
	*)
		die_usage "unknown option $(quote "$name")"
		;;
	esac

	if [ "$kind" = value ] && [ -z "$hasval" ]; then
		[ $# -gt 0 ] || die_usage "$name needs a value"
		val=$1
		shift
		hasval=1
	fi
	# The --flag=value form keeps a value that starts with "-" a value.
	if [ -n "$hasval" ]; then
		word=$(quote "$flag=$val")
	else
		word=$flag
	fi
	case $flag in
	--services-file) cli_services=$val ;;
	--run-dir) cli_run_dir=$val ;;
	esac
	case $to in
	sync) sync_args="$sync_args $word" ;;
	reload) reload_args="$reload_args $word" ;;
	both)
		sync_args="$sync_args $word"
		reload_args="$reload_args $word"
		;;
	esac
done

for bin in proxymatic-sync proxymatic-reload; do
	command -v "$bin" >/dev/null 2>&1 || {
		log "$bin not found on PATH ($PATH)"
		exit 127
	}
done

# One private services file: the RUN_DIR the proxies use unless SERVICES_FILE
# says otherwise.
run_dir=${cli_run_dir:-${RUN_DIR:-/var/run/proxymatic}}
services_file=${cli_services:-${SERVICES_FILE:-$run_dir/services.yaml}}
mkdir -p "$(dirname "$services_file")" || exit 1
sync_args="$(quote "--output=$services_file")$sync_args"
reload_args="$(quote "--services=$services_file")$reload_args"
# Like the original image, one port serves /status: reload's. Sync's
# endpoint is on only when asked for (an empty value disables it).
if [ -z "$sync_status_set" ]; then
	sync_args="--status-endpoint= $sync_args"
fi

case ${ENTRYPOINT_KILL_AFTER:-30} in
'' | *[!0-9]*) die_usage "invalid ENTRYPOINT_KILL_AFTER ${ENTRYPOINT_KILL_AFTER:-}: want whole seconds" ;;
esac
kill_after=${ENTRYPOINT_KILL_AFTER:-30}

state=$(mktemp -d "${TMPDIR:-/tmp}/proxymatic-entrypoint.XXXXXX") || exit 1
main_pid=$$

# supervise runs one binary in a subshell that forwards TERM to it and, when
# it exits, records its status in $state/NAME and wakes the main shell. The
# status file, not the process table, is what the main shell trusts: an
# exited child may linger as a zombie that kill -0 still finds.
# shellcheck disable=SC2317 # called through eval
supervise() {
	name=$1
	shift
	child=""
	term=""
	trap 'term=1; [ -z "$child" ] || kill -TERM "$child" 2>/dev/null' TERM
	trap '[ -z "$child" ] || kill -HUP "$child" 2>/dev/null' HUP
	"$@" &
	child=$!
	[ -z "$term" ] || kill -TERM "$child" 2>/dev/null
	echo "$child" >"$state/$name.pid"
	while :; do
		wait "$child"
		rc=$?
		# Above 128 with the child alive: the wait was cut short by the trap.
		[ "$rc" -gt 128 ] && kill -0 "$child" 2>/dev/null && continue
		break
	done
	echo "$rc" >"$state/$name.tmp" && mv "$state/$name.tmp" "$state/$name"
	kill -USR1 "$main_pid" 2>/dev/null
	exit "$rc"
}

# wait_pid waits for one child of this shell, through interruptions.
wait_pid() {
	while :; do
		wait "$1"
		r=$?
		[ "$r" -gt 128 ] && kill -0 "$1" 2>/dev/null && continue
		return "$r"
	done
}

stopping=""
# shellcheck disable=SC2317 # called from traps
on_signal() {
	[ -n "$stopping" ] && return
	stopping=$1
	log "received SIG$1, stopping proxymatic-sync and proxymatic-reload"
}
trap 'on_signal TERM' TERM
trap 'on_signal INT' INT
sync_w=""
reload_w=""
# SIGHUP is passed on as SIGHUP: sync reads every source again, reload
# applies the services file again; neither stops.
trap 'log "received SIGHUP, passing it on"; kill -HUP "$sync_w" "$reload_w" 2>/dev/null' HUP
trap ':' USR1
trap 'rm -rf "$state"' EXIT

eval "supervise proxymatic-sync proxymatic-sync $sync_args &"
sync_w=$!
eval "supervise proxymatic-reload proxymatic-reload $reload_args &"
reload_w=$!
log "started proxymatic-sync and proxymatic-reload on $services_file"

# Sleep in the background so that a signal cuts the wait short; USR1 from a
# supervisor makes an exit prompt, the one-second tick makes it certain.
while [ -z "$stopping" ] && [ ! -e "$state/proxymatic-sync" ] && [ ! -e "$state/proxymatic-reload" ]; do
	sleep 1 &
	tick=$!
	wait "$tick"
	kill "$tick" 2>/dev/null
done

first=""
for name in proxymatic-sync proxymatic-reload; do
	if [ -z "$first" ] && [ -e "$state/$name" ]; then
		first=$name
		log "$name exited with status $(cat "$state/$name"); stopping the other"
	fi
done

# A supervisor killed before it set its trap would orphan its binary: wait
# (briefly) until both have started theirs, which their pid files mark.
for name in proxymatic-sync proxymatic-reload; do
	n=0
	while [ ! -e "$state/$name.pid" ] && [ ! -e "$state/$name" ] && [ "$n" -lt 50 ]; do
		sleep 0.1 2>/dev/null || sleep 1
		n=$((n + 1))
	done
done
kill -TERM "$sync_w" "$reload_w" 2>/dev/null
# A last resort: whatever still runs kill_after seconds from now is killed.
(
	s=""
	trap '[ -z "$s" ] || kill "$s" 2>/dev/null; exit 0' TERM
	sleep "$kill_after" &
	s=$!
	wait "$s"
	for f in "$state"/*.pid; do
		n=${f%.pid}
		[ -e "$n" ] && continue
		log "${n##*/} still running after ${kill_after}s; killing it"
		kill -KILL "$(cat "$f")" 2>/dev/null
	done
) &
killer=$!
wait_pid "$sync_w"
wait_pid "$reload_w"
kill "$killer" 2>/dev/null
wait "$killer" 2>/dev/null

sync_rc=$(cat "$state/proxymatic-sync" 2>/dev/null || echo 1)
reload_rc=$(cat "$state/proxymatic-reload" 2>/dev/null || echo 1)
if [ -n "$first" ]; then
	# A child exiting on its own is a failure of the container, whatever its status.
	rc=$(cat "$state/$first")
	[ "$rc" -eq 0 ] && rc=1
	exit "$rc"
fi
if [ "$sync_rc" -ne 0 ]; then exit "$sync_rc"; fi
exit "$reload_rc"
