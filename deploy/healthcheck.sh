#!/bin/bash
# healthcheck.sh: the images' HEALTHCHECK. The slim images carry no curl, so
# this asks /status over bash's /dev/tcp and succeeds only on HTTP 200 (the
# endpoint answers 503 while INITIALIZING or TERMINATING).
#
#   healthcheck.sh sync      checks $SYNC_STATUS_ENDPOINT (default 0.0.0.0:9091)
#   healthcheck.sh reload    checks $STATUS_ENDPOINT (default 0.0.0.0:9090)
#   healthcheck.sh HOST:PORT checks that address
set -u

# A variable set to "" turned that endpoint off (as the original image's
# STATUS_ENDPOINT did): there is nothing to ask, and asking the default port
# could reach another process.
off() {
	echo "healthcheck: $1 is set to \"\": the status endpoint is off, nothing to check (run with --no-healthcheck)" >&2
	exit 1
}
case "${1:-reload}" in
sync)
	[ -n "${SYNC_STATUS_ENDPOINT+set}" ] && [ -z "$SYNC_STATUS_ENDPOINT" ] && off SYNC_STATUS_ENDPOINT
	addr=${SYNC_STATUS_ENDPOINT:-0.0.0.0:9091}
	;;
reload)
	[ -n "${STATUS_ENDPOINT+set}" ] && [ -z "$STATUS_ENDPOINT" ] && off STATUS_ENDPOINT
	addr=${STATUS_ENDPOINT:-0.0.0.0:9090}
	;;
*) addr=$1 ;;
esac

port=${addr##*:}
host=${addr%:*}
host=${host#[}
host=${host%]}
# A wildcard listen address is reached on loopback.
case $host in
'' | 0.0.0.0) host=127.0.0.1 ;;
::) host=::1 ;;
esac

check() {
	exec 3<>"/dev/tcp/$host/$port" || exit 1
	printf 'GET /status HTTP/1.0\r\nHost: %s\r\nConnection: close\r\n\r\n' "$host" >&3
	IFS= read -r line <&3 || exit 1
	exec 3<&-
	case $line in
	"HTTP/1."[01]" 200 "*) exit 0 ;;
	esac
	echo "healthcheck: $host:$port/status: ${line%$'\r'}" >&2
	exit 1
}

# The check itself gets a deadline so a stuck endpoint fails instead of hanging.
export -f check
export host port
exec timeout "${HEALTHCHECK_TIMEOUT:-3}" bash -c check
