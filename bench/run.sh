#!/bin/sh
# Reproduces the figures in docs/performance.md. Run from the repository
# root on an otherwise idle machine; it prints the machine and its load
# first, because the figures depend on both. Loopback only; every loop is
# bounded by -benchtime. Takes about 3 minutes on 2 cores.
set -eu
echo "== machine"
echo "nproc: $(nproc)"
grep -m1 'model name' /proc/cpuinfo || true
go version
echo "load before: $(cat /proc/loadavg)"

bench() { go test -count=1 -run '^$' "$@"; }

echo "== (1) Marathon /v2/apps -> services (decode + compile), 1,000 and 10,000 apps x 4 tasks"
bench -bench 'Compile|Decode' -benchtime 5x ./pkg/marathon/
echo "== (2) services.yaml encode / decode, 10,000 services / 40,000 servers"
bench -bench . -benchtime 5x ./pkg/services/
echo "== (3) render haproxy.cfg, nginx.conf and pen configs, 10,000 services"
bench -bench . -benchtime 5x ./pkg/render/
echo "== (4) proxymatic-sync --once --dry-run, then proxymatic-reload --dry-run --validate=false --haproxy"
bench -bench OnceDryRun -benchtime 5x ./bench/
echo "== (5) Marathon event -> services.yaml renamed -> HAProxy answering from the new backend"
bench -bench EventToTraffic -benchtime "${EVENTS:-50}x" -timeout 30m ./bench/
echo "== (6) Marathon storm: 200 single-task events at 50/s, 10,000 apps x 4 tasks (issue 14)"
bench -bench MarathonStorm -benchtime 1x -timeout 30m ./bench/
echo "== no-change refresh: no write, no reload (asserted)"
go test -count=1 -run TestUnchangedRefreshWritesAndReloadsNothing ./bench/
echo "load after: $(cat /proc/loadavg)"
