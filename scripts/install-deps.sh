#!/bin/sh
# Installs what the tests and the demo run for real: HAProxy, nginx, pen and
# etcd (Debian packages), shellcheck for the shell scripts' test, Chromium (the
# status page tests load it in a headless browser) and systemd-analyze (the
# unit files are checked with it). Does nothing when they are all present.
set -eu

missing=""
have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }
have haproxy || missing="$missing haproxy"
have nginx || missing="$missing nginx"
have pen || missing="$missing pen"
have etcd || missing="$missing etcd-server"
have etcdctl || missing="$missing etcd-client"
have shellcheck || missing="$missing shellcheck"
have chromium || missing="$missing chromium"
have systemd-analyze || missing="$missing systemd"

if [ -z "$missing" ]; then
	exit 0
fi
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing:$missing" >&2
	echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
	echo "install-deps: missing:$missing, and this is not a Debian system; install them by hand" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# shellcheck disable=SC2086
apt-get install -y -qq --no-install-recommends $missing >/dev/null
# The packages start system services we do not use; stop them so that their
# ports (80 for nginx, 2379 for etcd) stay free for the demo and tests.
for s in nginx haproxy etcd; do
	if command -v systemctl >/dev/null 2>&1; then systemctl stop "$s" >/dev/null 2>&1 || true; fi
	if command -v service >/dev/null 2>&1; then service "$s" stop >/dev/null 2>&1 || true; fi
done
