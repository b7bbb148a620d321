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
# In combined mode each original option goes to the binary that owns it
# (long options may be abbreviated, as optparse allowed; stray positional
# arguments are ignored with a warning, as the original ignored them), the
# environment variables reach both (each reads its own), and when either
# exits the other is stopped and the script exits non-zero. SIGTERM keeps the
# proxies serving with /status TERMINATING until the container is killed,
# unless SHUTDOWN_DELAY (or --shutdown-delay) is set; SIGINT and a
# second SIGTERM stop both; SIGHUP is passed on (a refresh, not a stop). See
# deploy/README.md.
set -u
# A lost log reader (the pipe behind stderr closed) must cost log lines, not
# the container: by default the next log line would kill this script with
# SIGPIPE (under tini, the container with it). Caught rather than ignored,
# so the binaries exec'd from here start with the default disposition.
trap ':' PIPE

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
      --shutdown-delay=D        TERMINATING before stopping           [$SHUTDOWN_DELAY]
                                [until killed: 8760h in this image]
      --stop-timeout=D          graceful proxy stop [10s]             [$STOP_TIMEOUT]
      --hard-stop-after=D       HAProxy old workers' limit [30m]      [$HARD_STOP_AFTER]
Both:
      --services-file=PATH      [$RUN_DIR/services.yaml]              [$SERVICES_FILE]
  -v, --verbose                 debug logging                         [$VERBOSE]
  -h, --help                    this help
Long options may be abbreviated (--vhost-d=...); positional arguments are
ignored. The entrypoint kills what is still running $ENTRYPOINT_KILL_AFTER
seconds [30] after it asked both to stop.
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
	# A command (sh, a debugging tool) runs instead; any other word is a
	# stray positional argument, ignored below as the original ignored it.
	if command -v "$1" >/dev/null 2>&1; then
		exec "$@"
	fi
	;;
esac

# The original's long options (optparse), then the ones this image adds.
# An abbreviation resolves among the original's first, so that one that
# worked with the original means the same here (--s is --status-endpoint).
orig_longs="help marathon marathon-callback registrator refresh-interval expose-host status-endpoint group-size max-connections pen-servers pen-clients haproxy vhost-domain vhost-port proxy-protocol verbose"
our_longs="sync-status-endpoint run-dir template-dir shutdown-delay stop-timeout hard-stop-after services-file"

# expand_long sets name to the long option $1 abbreviates, as optparse did:
# an exact name, else the only one it starts; several is an error naming them.
expand_long() {
	want=${1#--}
	for o in $orig_longs $our_longs; do
		if [ "$o" = "$want" ]; then
			name=--$o
			return
		fi
	done
	for group in "$orig_longs" "$our_longs"; do
		hits=""
		for o in $group; do
			case $o in
			"$want"*) hits="$hits --$o" ;;
			esac
		done
		# shellcheck disable=SC2086 # word splitting wanted
		set -- $hits
		case $# in
		0) continue ;;
		1) name=$1 && return ;;
		*)
			hits=$(printf '%s\n' "$@" | sort | sed 's/$/,/' | tr '\n' ' ')
			hits=${hits%, }
			die_usage "ambiguous option: --$want ($hits?)"
			;;
		esac
	done
	name=--$want
}

sync_args=""
reload_args=""
cli_services=""
cli_run_dir=""
cli_shutdown_delay=""
sync_status_set=""
[ -n "${SYNC_STATUS_ENDPOINT:-}" ] && sync_status_set=1

while [ $# -gt 0 ]; do
	arg=$1
	shift
	hasval=""
	val=""
	case $arg in
	--)
		for a in "$@"; do
			log "ignoring positional argument $(quote "$a")"
		done
		break
		;;
	--once | --dry-run | --output-dir | --validate | --output | --services | \
		--once=* | --dry-run=* | --output-dir=* | --validate=* | --output=* | --services=*)
		# Never abbreviated: the one-binary options, refused below.
		name=${arg%%=*}
		;;
	--*=*)
		expand_long "${arg%%=*}"
		val=${arg#*=}
		hasval=1
		;;
	--*)
		expand_long "$arg"
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
		log "ignoring positional argument $(quote "$arg")"
		continue
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
	--shutdown-delay) to=reload kind=value flag=--shutdown-delay cli_shutdown_delay=1 ;;
	--stop-timeout) to=reload kind=value flag=--stop-timeout ;;
	--hard-stop-after) to=reload kind=value flag=--hard-stop-after ;;
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
		die_usage "no such option: $(quote "$name")"
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
# Like the original image, SIGTERM flips /status to TERMINATING and the
# proxies keep serving until the container is killed at the end of its stop
# timeout (the drain procedure relies on docker stop --time=N): reload's
# shutdown delay is made longer than any stop timeout. Setting
# SHUTDOWN_DELAY or --shutdown-delay restores a timed shutdown.
drain=""
if [ -z "$cli_shutdown_delay" ] && [ -z "${SHUTDOWN_DELAY:-}" ]; then
	drain=1
	reload_args="$reload_args --shutdown-delay=8760h"
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
		[ "$rc" -le 128 ] && break
		# Above 128: the child died of a signal, or a trap cut the wait
		# short. Waiting again tells which: 127 means the status above was
		# the child's own; otherwise it is the child's (it exited meanwhile:
		# a binary stops within milliseconds of the TERM passed on, and the
		# shell may reap it before a kill -0 could see it) or another cut.
		wait "$child"
		r=$?
		[ "$r" -eq 127 ] && break
		rc=$r
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
again=""
# shellcheck disable=SC2317 # called from traps
on_signal() {
	if [ -n "$stopping" ]; then
		again=$1
		return
	fi
	stopping=$1
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

# tick sleeps in the background so that a signal cuts the wait short; USR1
# from a supervisor makes an exit prompt, the one-second tick makes it certain.
tick() {
	sleep 1 &
	t=$!
	wait "$t"
	kill "$t" 2>/dev/null
}
exited() { [ -e "$state/proxymatic-sync" ] || [ -e "$state/proxymatic-reload" ]; }

# started waits (briefly) until both supervisors have started their binary,
# which their pid files mark: one signalled before it set its trap would
# orphan its binary.
started() {
	for name in proxymatic-sync proxymatic-reload; do
		n=0
		while [ ! -e "$state/$name.pid" ] && [ ! -e "$state/$name" ] && [ "$n" -lt 50 ]; do
			sleep 0.1 2>/dev/null || sleep 1
			n=$((n + 1))
		done
	done
}

while [ -z "$stopping" ] && ! exited; do
	tick
done

draining=""
if [ "$stopping" = TERM ] && [ -n "$drain" ] && ! exited; then
	draining=1
	log "received SIGTERM: /status reports TERMINATING and the proxies keep serving until the container is killed (SIGINT or another SIGTERM stops them now)"
	started
	kill -TERM "$reload_w" 2>/dev/null
	while [ -z "$again" ] && ! exited; do
		tick
	done
	[ -n "$again" ] && stopping=$again
fi
[ -n "$stopping" ] && log "received SIG$stopping, stopping proxymatic-sync and proxymatic-reload"

first=""
for name in proxymatic-sync proxymatic-reload; do
	# reload ending after it was asked to (draining) is no failure.
	if [ -z "$first" ] && [ -e "$state/$name" ] && { [ -z "$draining" ] || [ "$name" = proxymatic-sync ]; }; then
		first=$name
		log "$name exited with status $(cat "$state/$name"); stopping the other"
	fi
done

started
kill -TERM "$sync_w" "$reload_w" 2>/dev/null
# A last resort: whatever still runs kill_after seconds from now is killed.
# It sleeps a second at a time, writing nowhere: when it is ended, the sleep
# left behind is gone within a second and never holds the output open.
(
	trap ':' PIPE # a subshell starts with the default disposition again
	n=0
	while [ "$n" -lt "$kill_after" ]; do
		sleep 1 >/dev/null 2>&1
		n=$((n + 1))
	done
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
