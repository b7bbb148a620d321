#!/usr/bin/env bash
# base-images.sh: builds, without a registry, the images that Dockerfile.sync
# and Dockerfile.reload start FROM, tagged with the names they use, so that
# the Dockerfiles stay exactly what a user with a registry builds.
#
#   debian:<suite>-slim     debootstrap --variant=minbase <suite> into a folder,
#                           slimmed the way Debian's official image is (no
#                           docs, man pages, locales, apt caches), docker import
#   golang:<X.Y>-<suite>    that image + ca-certificates + a Go X.Y toolchain
#                           copied in (GO_ROOT, default `go env GOROOT`, or
#                           GO_TARBALL, a go*.linux-*.tar.gz), with the official
#                           image's GOPATH, PATH and GOTOOLCHAIN=local
#
# An image that is already there is kept: one this script built with the same
# recipe (the org.proxymatic.base.recipe label: a hash of what makes the
# image: the debootstrap command and the slimming for the first; the base
# image, the generated Dockerfile and the Go version for the second; not the
# rest of this script, whose edits need no rebuild), or one that is not this script's at
# all (pulled from a registry). The debootstrapped root file system is kept as
# a tarball in the cache directory, so that an engine that lost its images
# imports it again instead of bootstrapping.
#
# Environment:
#   BASE_CACHE_DIR   rootfs tarballs [/var/cache/proxymatic-base as root,
#                    else ${XDG_CACHE_HOME:-~/.cache}/proxymatic-base]
#   DEBIAN_MIRROR    Debian's archive [the one this host's apt uses]
#   DEBIAN_SECURITY_MIRROR  its security archive [likewise]
#   GO_ROOT, GO_TARBALL    the Go toolchain to copy in (see above)
#   BASE_REBUILD=1   rebuild both even when the recipe matches
#
# Needs root for debootstrap (only when an image and its tarball are missing),
# docker, and GNU tar.
set -euo pipefail

prog=base-images
log() { printf '%s: %s\n' "$prog" "$*" >&2; }
die() {
	log "$*"
	exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
label=org.proxymatic.base.recipe

# host_mirror SUFFIX prints the first archive URI of this host's apt sources
# (one-line or deb822) whose path ends in SUFFIX (/debian, /debian-security):
# the mirror this machine is set up to use.
host_mirror() {
	local f files=()
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || return 0
	awk -v want="$1" '
		/^[ \t]*deb[ \t]/ { sub(/\[[^]]*\]/, ""); uris = $2 }
		/^URIs:/ { uris = substr($0, 6) }
		uris != "" {
			n = split(uris, u, /[ \t]+/)
			for (i = 1; i <= n; i++) {
				x = u[i]; sub(/\/+$/, "", x)
				if (x ~ ("^[a-z]+://.*" want "$")) { print x; exit }
			}
			uris = ""
		}' "${files[@]}"
}
mirror=${DEBIAN_MIRROR:-$(host_mirror /debian)}
security_mirror=${DEBIAN_SECURITY_MIRROR:-$(host_mirror /debian-security)}
if [ -n "${BASE_CACHE_DIR:-}" ]; then
	cache=$BASE_CACHE_DIR
elif [ "$(id -u)" = 0 ]; then
	cache=/var/cache/proxymatic-base
else
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/proxymatic-base
fi

command -v docker >/dev/null 2>&1 || die "docker not found on PATH"
docker version --format '{{.Server.Version}}' >/dev/null 2>&1 || die "no Docker engine answers (docker version failed)"

# The FROM lines are the contract: build what they name, refuse what this
# script does not know how to build.
slim_tag="" go_tag=""
while read -r image; do
	case $image in
	debian:*-slim) slim_tag=$image ;;
	golang:*-*) go_tag=$image ;;
	*) die "a Dockerfile starts FROM $image, which this script does not build" ;;
	esac
done < <(awk 'toupper($1) == "FROM" { print $2 }' "$root/Dockerfile.sync" "$root/Dockerfile.reload" | sort -u)
{ [ -n "$slim_tag" ] && [ -n "$go_tag" ]; } || die "want FROM debian:<suite>-slim and golang:<X.Y>-<suite> in the Dockerfiles"
suite=${slim_tag#debian:}
suite=${suite%-slim}
go_want=${go_tag#golang:}
go_want=${go_want%%-*}
[ "${go_tag#golang:"$go_want"-}" = "$suite" ] || die "$go_tag and $slim_tag are not the same Debian suite"

[ -n "$mirror" ] || die "no Debian archive in this host's apt sources: set DEBIAN_MIRROR"
[ -n "$security_mirror" ] || die "no Debian security archive in this host's apt sources: set DEBIAN_SECURITY_MIRROR"

mkdir -p "$cache"
exec 9>"$cache/.lock"
# Two builds at once (make images beside go test) would bootstrap twice.
flock 9

# recipe_of IMAGE prints the recipe label of IMAGE, "-" for an image without
# one, and nothing when the image is not there.
recipe_of() {
	docker image inspect --format "{{with index .Config.Labels \"$label\"}}{{.}}{{else}}-{{end}}" "$1" 2>/dev/null || true
}

# fresh IMAGE RECIPE succeeds when IMAGE need not be built.
fresh() {
	local have
	have=$(recipe_of "$1")
	case $have in
	'') return 1 ;;
	-)
		log "$1 exists and was not built by this script (a registry image?); keeping it"
		return 0
		;;
	"$2")
		[ -z "${BASE_REBUILD:-}" ] || return 1
		log "$1 is up to date (recipe ${2:0:12})"
		return 0
		;;
	*) return 1 ;;
	esac
}

tmp=$(mktemp -d "${TMPDIR:-/var/tmp}/base-images.XXXXXX")
# An interrupted debootstrap leaves proc and sys mounted in the root file
# system: unmount what is below $tmp, and never delete across a mount.
cleanup() {
	awk -v t="$tmp/" 'index($2, t) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do
		umount -l "$m" || true
	done
	rm -rf --one-file-system "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- debian:<suite>-slim -----------------------------------------------------


# slim RD: what debuerreotype does to Debian's official -slim images.
slim() {
	local rd=$1
	mkdir -p "$rd/etc/dpkg/dpkg.cfg.d" "$rd/etc/apt/apt.conf.d" "$rd/etc/apt/sources.list.d"
	cat >"$rd/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Drop documentation, man pages and translations, as Debian's -slim images do.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
	echo 'force-unsafe-io' >"$rd/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	# No package cache survives an install: layers keep no .debs.
	cat >"$rd/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Acquire::GzipIndexes "true";' >"$rd/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Acquire::Languages "none";' >"$rd/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$rd/etc/apt/apt.conf.d/docker-autoremove-suggests"
	rm -f "$rd/etc/apt/sources.list"
	cat >"$rd/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	find "$rd/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete 2>/dev/null || true
	find "$rd/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$rd/usr/share/man/"* "$rd/usr/share/groff/"* "$rd/usr/share/info/"* \
		"$rd/usr/share/lintian/"* "$rd/usr/share/linda/"*
	find "$rd/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} + 2>/dev/null || true
	# Nothing of this machine's: docker provides hostname, hosts and
	# resolv.conf at run time; every container gets its own machine id.
	rm -rf "$rd/var/lib/apt/lists/"* "$rd/var/cache/apt/"*.bin "$rd/var/cache/apt/archives/"*.deb \
		"$rd/var/log/bootstrap.log" "$rd/var/cache/ldconfig/aux-cache" "$rd/root/.bash_history"
	mkdir -p "$rd/var/lib/apt/lists/partial"
	: >"$rd/etc/resolv.conf"
	: >"$rd/etc/hostname"
	: >"$rd/etc/machine-id"
	find "$rd/var/log" -type f -exec truncate -s 0 {} +
	find "$rd/tmp" "$rd/var/tmp" -mindepth 1 -delete
}

debootstrap_args=(--variant=minbase "$suite")
slim_recipe=$(printf '%s\n' "${debootstrap_args[*]}" "$mirror" "$security_mirror" "$(declare -f slim)" | sha256sum | cut -c1-64)
rootfs_tar="$cache/debian-$suite-slim-${slim_recipe:0:16}.tar"

if ! fresh "$slim_tag" "$slim_recipe"; then
	SECONDS=0
	if [ ! -s "$rootfs_tar" ] || [ -n "${BASE_REBUILD:-}" ]; then
		[ "$(id -u)" = 0 ] || die "debootstrap needs root to build $slim_tag (or put the image in the engine: docker load / docker pull)"
		if ! command -v debootstrap >/dev/null 2>&1; then
			command -v apt-get >/dev/null 2>&1 || die "debootstrap not found, and no apt-get to install it"
			log "installing debootstrap"
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null ||
				die "apt-get install debootstrap failed"
		fi
		log "debootstrap $suite from $mirror (a minute or more)"
		if ! debootstrap "${debootstrap_args[@]}" "$tmp/rootfs" "$mirror" >"$tmp/debootstrap.log" 2>&1; then
			tail -n 20 "$tmp/debootstrap.log" >&2
			die "debootstrap $suite $mirror failed"
		fi
		slim "$tmp/rootfs"
		tar --numeric-owner --xattrs -C "$tmp/rootfs" -cf "$tmp/rootfs.tar" .
		rm -f "$cache"/debian-"$suite"-slim-*.tar
		mv "$tmp/rootfs.tar" "$rootfs_tar"
		rm -rf "$tmp/rootfs"
	else
		log "importing the cached root file system $rootfs_tar"
	fi
	docker import \
		--change "LABEL $label=$slim_recipe" \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--change 'CMD ["bash"]' \
		"$rootfs_tar" "$slim_tag" >/dev/null
	log "built $slim_tag in ${SECONDS}s"
fi

# --- golang:<X.Y>-<suite> ----------------------------------------------------

mkdir -p "$tmp/go-context"
if [ -n "${GO_TARBALL:-}" ]; then
	tar -C "$tmp/go-context" -xzf "$GO_TARBALL"
	[ -x "$tmp/go-context/go/bin/go" ] || die "$GO_TARBALL has no go/bin/go"
	go_root="$tmp/go-context/go"
else
	go_root=${GO_ROOT:-}
	if [ -z "$go_root" ]; then
		command -v go >/dev/null 2>&1 || die "no go on PATH: set GO_ROOT or GO_TARBALL to a Go $go_want toolchain"
		go_root=$(go env GOROOT)
	fi
fi
go_version=$(sed -n '1s/^go//p' "$go_root/VERSION")
case $go_version in
"$go_want" | "$go_want".*) ;;
*) die "$go_tag wants Go $go_want, $go_root is go$go_version: set GO_ROOT or GO_TARBALL" ;;
esac
slim_id=$(docker image inspect --format '{{.Id}}' "$slim_tag")
go_dockerfile="FROM $slim_tag
# The Go module proxy over https, as in the official image.
RUN apt-get update \\
 && apt-get install -y --no-install-recommends ca-certificates \\
 && rm -rf /var/lib/apt/lists/*
ENV GOLANG_VERSION=$go_version GOTOOLCHAIN=local GOPATH=/go
ENV PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY go /usr/local/go
RUN mkdir -p /go/src /go/bin && chmod -R 1777 /go
WORKDIR /go"
go_recipe=$(printf '%s\n' "$slim_id" "$go_version" "$go_dockerfile" | sha256sum | cut -c1-64)

if ! fresh "$go_tag" "$go_recipe"; then
	if [ -z "${GO_TARBALL:-}" ]; then
		# Hard links when the toolchain is on the same file system: no copy.
		cp -al "$go_root" "$tmp/go-context/go" 2>/dev/null || cp -a "$go_root" "$tmp/go-context/go"
	fi
	# The toolchain's own tests are not needed to build.
	rm -rf "$tmp/go-context/go/test" "$tmp/go-context/go/pkg/obj"
	printf '%s\nLABEL %s=%s\n' "$go_dockerfile" "$label" "$go_recipe" >"$tmp/go-context/Dockerfile"
	log "building $go_tag with go$go_version from $go_root"
	SECONDS=0
	if ! docker build -q -t "$go_tag" "$tmp/go-context" >"$tmp/build.log" 2>&1; then
		cat "$tmp/build.log" >&2
		die "building $go_tag failed"
	fi
	log "built $go_tag in ${SECONDS}s"
fi
