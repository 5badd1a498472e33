#!/usr/bin/env bash
# Create the local base images debian:bookworm and debian:bookworm-slim when they are missing.
#
# The Dockerfile starts FROM the standard Debian images. Where a registry is reachable those are
# simply pulled; on a machine with a Docker engine but no registry (this one), this script
# builds equivalents from Debian's own packages:
#
#   debootstrap --variant=minbase bookworm <dir> http://deb.debian.org/debian
#
# then configures apt/dpkg the way the official images do (debuerreotype: no apt caches,
# gzipped indexes, no translations, policy-rc.d, deb822 sources incl. bookworm-updates and
# bookworm-security), and for the slim variant also drops docs, man pages, info and locales
# and tells dpkg to keep them out. Each root filesystem is cached as a tarball under
# .cache/docker-base/ (git-ignored), so a rerun after `docker rmi` only re-imports it:
#
#   tar -C <dir> -c . | docker import - debian:bookworm
#
# Idempotent: an image that `docker image inspect` finds is left alone. Needs root (debootstrap
# and the ownership of the files in the tarballs), debootstrap and a running Docker engine.
#
# Environment:
#   DEBIAN_MIRROR             default http://deb.debian.org/debian
#   DEBIAN_SECURITY_MIRROR    default http://deb.debian.org/debian-security
#   RAFTKV_BASE_CACHE         cache directory (default <repo>/.cache/docker-base)
#   RAFTKV_BASE_REBUILD=1     ignore the cached tarballs (and replace the images)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SUITE=bookworm
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=${RAFTKV_BASE_CACHE:-$REPO/.cache/docker-base}
REBUILD=${RAFTKV_BASE_REBUILD:-0}

say() { echo "docker-base: $*"; }
die() {
	echo "docker-base: error: $*" >&2
	exit 1
}

command -v docker >/dev/null 2>&1 || die "docker is not installed"
docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info failed)"

have_image() { docker image inspect "$1" >/dev/null 2>&1; }

if [ "$REBUILD" = 0 ] && have_image "debian:$SUITE" && have_image "debian:$SUITE-slim"; then
	say "debian:$SUITE and debian:$SUITE-slim present"
	exit 0
fi

[ "$(id -u)" -eq 0 ] || die "must run as root (debootstrap, file ownership in the root filesystem)"

mkdir -p "$CACHE"
FULL_TAR=$CACHE/$SUITE.tar
SLIM_TAR=$CACHE/$SUITE-slim.tar
WORK=""
cleanup() {
	if [ -n "$WORK" ] && [ -d "$WORK" ]; then
		# Never follow anything out of the tree: it is a root filesystem.
		umount -R "$WORK/rootfs/proc" 2>/dev/null || true
		umount -R "$WORK/rootfs/sys" 2>/dev/null || true
		rm -rf --one-file-system "$WORK"
	fi
}
trap cleanup EXIT

# The apt/dpkg configuration of the official images (debuerreotype).
configure_rootfs() {
	local root=$1
	mkdir -p "$root/etc/apt/apt.conf.d" "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/sources.list.d"
	cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
# No apt caches in image layers (as in the official Debian images).
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
	echo 'Acquire::GzipIndexes "true";' >"$root/etc/apt/apt.conf.d/docker-gzip-indexes"
	echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
	echo 'Apt::AutoRemove::SuggestsImportant "false";' >"$root/etc/apt/apt.conf.d/docker-autoremove-suggests"
	echo 'force-unsafe-io' >"$root/etc/dpkg/dpkg.cfg.d/docker-apt-speedup"
	printf '#!/bin/sh\n# No services start inside image builds.\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
	chmod 755 "$root/usr/sbin/policy-rc.d"
	rm -f "$root/etc/apt/sources.list"
	cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
	# Identity of the build host must not leak into the image.
	echo "localhost" >"$root/etc/hostname"
	: >"$root/etc/resolv.conf"
	rm -f "$root/etc/machine-id" "$root/var/lib/dbus/machine-id"
	: >"$root/etc/machine-id"
	clean_rootfs "$root"
}

clean_rootfs() {
	local root=$1
	rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
		"$root"/var/log/apt/* "$root"/var/log/dpkg.log "$root"/var/log/bootstrap.log \
		"$root"/var/log/alternatives.log "$root"/tmp/* "$root"/var/tmp/* "$root"/root/.bash_history
	mkdir -p "$root/var/lib/apt/lists/partial" "$root/var/cache/apt/archives/partial"
}

# Slim: what debuerreotype-slimify does: keep docs, man pages, info and locales out (dpkg
# path-exclude, so packages installed later stay slim too) and delete the ones present.
slimify() {
	local root=$1
	cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
# Slim image: no documentation, manual pages or translations (copyright files are kept).
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/lintian/overrides/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/man/*
EOF
	find "$root/usr/share/doc" -mindepth 1 -not -type d -not -name copyright -delete 2>/dev/null || true
	find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
	rm -rf "$root"/usr/share/groff/* "$root"/usr/share/info/* "$root"/usr/share/linda/* \
		"$root"/usr/share/lintian/overrides/* "$root"/usr/share/locale/* "$root"/usr/share/man/*
}

make_tarballs() {
	command -v debootstrap >/dev/null 2>&1 ||
		die "debootstrap is not installed (apt-get install debootstrap, or scripts/install-deps.sh)"
	WORK=$(mktemp -d "$CACHE/work.XXXXXX")
	local root=$WORK/rootfs
	say "debootstrap --variant=minbase $SUITE from $MIRROR (a few minutes)"
	if ! debootstrap --variant=minbase "$SUITE" "$root" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
		tail -n 30 "$WORK/debootstrap.log" >&2
		tail -n 30 "$root/debootstrap/debootstrap.log" >&2 2>/dev/null || true
		die "debootstrap failed"
	fi
	configure_rootfs "$root"
	say "packing $FULL_TAR"
	tar --numeric-owner --xattrs -C "$root" -cf "$FULL_TAR.tmp" .
	mv "$FULL_TAR.tmp" "$FULL_TAR"
	slimify "$root"
	say "packing $SLIM_TAR"
	tar --numeric-owner --xattrs -C "$root" -cf "$SLIM_TAR.tmp" .
	mv "$SLIM_TAR.tmp" "$SLIM_TAR"
	cleanup
	WORK=""
}

if [ "$REBUILD" != 0 ] || [ ! -s "$FULL_TAR" ] || [ ! -s "$SLIM_TAR" ]; then
	make_tarballs
else
	say "using cached root filesystems in $CACHE"
fi

import() {
	local tarball=$1 tag=$2
	if [ "$REBUILD" = 0 ] && have_image "$tag"; then
		say "$tag present"
		return
	fi
	say "docker import $tag"
	docker import \
		--change 'CMD ["bash"]' \
		--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
		--message "debootstrap --variant=minbase $SUITE (scripts/docker-base.sh)" \
		- "$tag" <"$tarball" >/dev/null
}
import "$FULL_TAR" "debian:$SUITE"
import "$SLIM_TAR" "debian:$SUITE-slim"
docker image ls --format '{{.Repository}}:{{.Tag}} {{.Size}}' | grep "^debian:$SUITE" | sed 's/^/docker-base: /'
