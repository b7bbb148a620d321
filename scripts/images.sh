#!/usr/bin/env bash
# images.sh: `make images`. Builds proxymatic-sync:latest (Dockerfile.sync)
# and proxymatic:latest (Dockerfile.reload) from the Dockerfiles as they are,
# after building the images they start FROM when the engine lacks them
# (scripts/base-images.sh: no registry needed).
#
# The build stage fetches Go modules from the module proxy. Where a build
# container cannot (seen: the machine's outgoing https is re-signed by a CA
# that only the host trusts, and go mod download fails with "x509:
# certificate signed by unknown authority"), this script downloads the
# modules on the host, serves the host's module cache on a loopback port
# (scripts/modproxy) and builds with --network host and --build-arg
# GOPROXY=http://127.0.0.1:PORT. go.sum still verifies every module.
#
# Environment:
#   IMAGES_GOPROXY   auto (probe a build container, default), host (always
#                    serve the host's cache), default (never)
#   MODPROXY_ADDR    where to serve it [127.0.0.1:29417]: a fixed address
#                    keeps the build arg, and so docker's layer cache, stable
#   IMAGES_VERBOSE=1 stream docker build's output (else shown on failure)
#   VERSION, COMMIT  what --version reports [git describe --tags --always
#                    --dirty, git rev-parse HEAD], as `make build` stamps it
#   SYNC_IMAGE, RELOAD_IMAGE   the tags [proxymatic-sync:latest, proxymatic:latest]
set -euo pipefail

prog=images
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
sync_image=${SYNC_IMAGE:-proxymatic-sync:latest}
reload_image=${RELOAD_IMAGE:-proxymatic:latest}

"$root/scripts/base-images.sh"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/images.XXXXXX")
proxy_pid=""
cleanup() {
	if [ -n "$proxy_pid" ]; then
		kill "$proxy_pid" 2>/dev/null || true
		wait "$proxy_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

go_image=$(awk 'toupper($1) == "FROM" && $2 ~ /^golang:/ { print $2; exit }' Dockerfile.sync)

# probe succeeds when a build container fetches one of go.sum's modules
# through the default proxy.
probe() {
	local mod
	mod=$(awk '$2 !~ /\/go\.mod$/ { print $1 "@" $2; exit }' go.sum)
	[ -n "$mod" ] || return 0
	if timeout 120 docker run --rm "$go_image" go mod download "$mod" >"$tmp/probe.log" 2>&1; then
		return 0
	fi
	log "a build container cannot fetch Go modules: $(tail -n 1 "$tmp/probe.log")"
	return 1
}

serve_host_cache() {
	command -v go >/dev/null 2>&1 || die "no go on PATH to download the modules on the host (IMAGES_GOPROXY=host needs it)"
	go mod download
	local cache addr
	cache="$(go env GOMODCACHE)/cache/download"
	go build -o "$tmp/modproxy" ./scripts/modproxy
	addr=${MODPROXY_ADDR:-127.0.0.1:29417}
	"$tmp/modproxy" -dir "$cache" -listen "$addr" >"$tmp/modproxy.out" 2>"$tmp/modproxy.err" &
	proxy_pid=$!
	# The address is its first line; a taken port makes it exit at once.
	for _ in $(seq 100); do
		[ -s "$tmp/modproxy.out" ] && break
		if ! kill -0 "$proxy_pid" 2>/dev/null; then
			log "$addr is taken ($(cat "$tmp/modproxy.err")); serving on another port (docker's layer cache misses this time)"
			"$tmp/modproxy" -dir "$cache" -listen 127.0.0.1:0 >"$tmp/modproxy.out" 2>"$tmp/modproxy.err" &
			proxy_pid=$!
		fi
		sleep 0.1
	done
	addr=$(head -n 1 "$tmp/modproxy.out")
	[ -n "$addr" ] || die "modproxy did not start: $(cat "$tmp/modproxy.err")"
	log "serving the host's module cache on $addr for the build"
	build_args+=(--network host --build-arg "GOPROXY=http://$addr")
}

# --version and proxymatic_build_info: the build context has no .git, so
# the version and commit go in as build arguments, computed as the
# Makefile's build does (VERSION and COMMIT in the environment win). Only
# the compile step depends on them: the module download stays cached.
version=${VERSION:-$(git describe --tags --always --dirty 2>/dev/null || echo dev)}
commit=${COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
build_args=(--build-arg "VERSION=$version" --build-arg "COMMIT=$commit")
case ${IMAGES_GOPROXY:-auto} in
auto) probe || serve_host_cache ;;
host) serve_host_cache ;;
default) ;;
*) die "IMAGES_GOPROXY=${IMAGES_GOPROXY}: want auto, host or default" ;;
esac

build() {
	local dockerfile=$1 tag=$2 start
	start=$(date +%s)
	log "building $tag from $dockerfile"
	if [ -n "${IMAGES_VERBOSE:-}" ]; then
		docker build --force-rm "${build_args[@]}" -f "$dockerfile" -t "$tag" .
	elif ! docker build --force-rm "${build_args[@]}" -f "$dockerfile" -t "$tag" . >"$tmp/build.log" 2>&1; then
		tail -n 40 "$tmp/build.log" >&2
		die "docker build -f $dockerfile failed"
	fi
	log "built $tag in $(($(date +%s) - start))s, $(docker image inspect --format '{{.Size}}' "$tag" | awk '{ printf "%.1f MB", $1 / 1e6 }')"
}

build Dockerfile.sync "$sync_image"
build Dockerfile.reload "$reload_image"
