#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# kernel/source.sh - the kernel source tarball, fetched into the build cache.
#
#   kernel/source.sh tarball    fetch (once) and print the tarball's path (last line)
#   kernel/source.sh version    print the version a build would use; no download
#
# Why: Debian's security archive moves linux-source-6.1 to a new revision every few
# weeks, and a new machine comes with whatever revision is newest. The build must not
# depend on what happens to be installed, so it fetches the pinned revision's package
# itself (apt-get download: signed index, then our own sha256 check of the .deb) and
# never looks at /usr/src. When the pinned revision has left the archive, it takes the
# newest 6.1 revision whose patches apply, says so in one line, and remembers that
# choice in the cache so the cache key and the build agree.
#
# Cache ($WPP_HIL_CACHE or ~/.cache/wpp-hil)/kernel/source/<version>/:
#   linux-source-6.1.tar.xz   the tarball from the package
#   manifest                  version, the .deb's sha256, pinned or fallback
# kernel/source/fallback      the fallback revision chosen, if the pinned one is gone
set -euo pipefail

PINNED_VERSION="6.1.192-2"
# sha256 of linux-source-6.1_6.1.192-2_all.deb as Debian published it
PINNED_DEB_SHA256="ae95fe63d4c553f8d0e6c86cb1ab566f3894a43743eb19ab585cd97d82f26514"
# tests/kernel/test_kernel_source.py pins a revision the archive never had, to take the
# fallback path for real
PINNED_VERSION="${WPP_KERNEL_SOURCE_PIN:-$PINNED_VERSION}"
SOURCE_PKG="linux-source-6.1"
TARBALL_NAME="linux-source-6.1.tar.xz"

SRC_HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SRC_REPO="$(cd "$SRC_HERE/.." && pwd)"
SRC_CACHE="${WPP_HIL_CACHE:-$HOME/.cache/wpp-hil}/kernel/source"

src_log() { printf 'kernel/source.sh: %s\n' "$*" >&2; }
src_die() {
	printf 'error: %s\n' "$1" >&2
	[ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

# Versions of the package the archive offers, newest first (apt's own lists).
archive_versions() {
	apt-cache madison "$SOURCE_PKG" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}' |
		grep -E '^6\.1\.' | sort -uVr || true
}

# apt drops to its own user to download, who cannot write into root's cache
sandbox_opt() { [ "$(id -u)" != 0 ] || echo "-o APT::Sandbox::User=root"; }

have_tarball() { [ -f "$SRC_CACHE/$1/.done" ]; }

# The version a build uses, without downloading anything.
resolve_version() {
	local fb
	if have_tarball "$PINNED_VERSION"; then
		echo "$PINNED_VERSION"
		return
	fi
	fb="$(cat "$SRC_CACHE/fallback" 2>/dev/null || true)"
	if [ -n "$fb" ] && have_tarball "$fb"; then
		echo "$fb"
		return
	fi
	local offered
	offered="$(archive_versions)"
	if [ -z "$offered" ] || grep -qxF "$PINNED_VERSION" <<<"$offered"; then
		echo "$PINNED_VERSION" # pinned, or no lists yet: fetch_tarball updates them
	else
		head -n1 <<<"$offered"
	fi
}

# Download VERSION's package into DIR and unpack its tarball there.
fetch_version() {
	local ver="$1" dir="$SRC_CACHE/$1" deb sum
	rm -rf "$dir.tmp"
	mkdir -p "$dir.tmp"
	src_log "downloading $SOURCE_PKG $ver (~140 MB, once)"
	(cd "$dir.tmp" && apt-get download -q $(sandbox_opt) "$SOURCE_PKG=$ver" >&2) || return 1
	deb="$(ls "$dir.tmp"/*.deb)"
	sum="$(sha256sum "$deb" | cut -d' ' -f1)"
	if [ "$ver" = "$PINNED_VERSION" ] && [ "$sum" != "$PINNED_DEB_SHA256" ]; then
		rm -rf "$dir.tmp"
		src_die "$SOURCE_PKG $ver: sha256 $sum, expected $PINNED_DEB_SHA256" \
			"the archive's package differs from the pinned one; check your mirror"
	fi
	dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$dir.tmp" --strip-components=3 \
		"./usr/src/$TARBALL_NAME" ||
		src_die "$deb holds no usr/src/$TARBALL_NAME" "check the package"
	rm -f "$deb"
	printf 'package %s\nversion %s\ndeb_sha256 %s\npinned %s\n' \
		"$SOURCE_PKG" "$ver" "$sum" "$PINNED_VERSION" >"$dir.tmp/manifest"
	touch "$dir.tmp/.done"
	rm -rf "$dir"
	mv "$dir.tmp" "$dir"
}

# Do kernel/patches apply to VERSION's tarball? Extracts only the files they touch.
patches_apply() {
	local tar="$SRC_CACHE/$1/$TARBALL_NAME" t files p rc=0
	t="$(mktemp -d)"
	files="$(sed -n 's#^--- a/##p' "$SRC_REPO"/kernel/patches/*.patch | sort -u |
		sed 's#^#linux-source-6.1/#')"
	# shellcheck disable=SC2086 # one member per word
	tar -xJf "$tar" -C "$t" $files 2>/dev/null || true
	for p in "$SRC_REPO"/kernel/patches/*.patch; do
		patch -d "$t/linux-source-6.1" -p1 -s -F0 --dry-run <"$p" >/dev/null 2>&1 || rc=1
		patch -d "$t/linux-source-6.1" -p1 -s -F0 <"$p" >/dev/null 2>&1 || true
	done
	rm -rf "$t"
	return $rc
}

refresh_lists() {
	[ "$(id -u)" = 0 ] || return 0
	src_log "apt-get update (the package lists do not offer $SOURCE_PKG $PINNED_VERSION)"
	apt-get update -q >&2 || true
}

fetch_tarball() {
	local ver
	ver="$(resolve_version)"
	if have_tarball "$ver"; then
		echo "$SRC_CACHE/$ver/$TARBALL_NAME"
		return
	fi
	mkdir -p "$SRC_CACHE"
	exec 8>"$SRC_CACHE/lock"
	flock 8
	have_tarball "$ver" && { echo "$SRC_CACHE/$ver/$TARBALL_NAME"; return; }
	if ! grep -qxF "$PINNED_VERSION" <<<"$(archive_versions)"; then
		refresh_lists
	fi
	if grep -qxF "$PINNED_VERSION" <<<"$(archive_versions)"; then
		fetch_version "$PINNED_VERSION" ||
			src_die "apt-get download $SOURCE_PKG=$PINNED_VERSION failed" \
				"check the network and 'apt-get update'"
		echo "$SRC_CACHE/$PINNED_VERSION/$TARBALL_NAME"
		return
	fi
	for ver in $(archive_versions); do
		fetch_version "$ver" || continue
		if patches_apply "$ver"; then
			echo "$ver" >"$SRC_CACHE/fallback"
			printf 'kernel source: pinned %s %s is gone from the archive; using %s, the newest whose patches apply\n' \
				"$SOURCE_PKG" "$PINNED_VERSION" "$ver" >&2
			echo "$SRC_CACHE/$ver/$TARBALL_NAME"
			return
		fi
		src_log "$ver: kernel/patches do not apply; trying an older revision"
		rm -rf "${SRC_CACHE:?}/$ver"
	done
	src_die "no $SOURCE_PKG 6.1 revision in the archive takes kernel/patches" \
		"run 'apt-get update'; or rebase the patches (kernel/dev/tree.sh) and update PINNED_VERSION"
}

src_main() {
	case "${1:-}" in
	tarball) fetch_tarball ;;
	version) resolve_version ;;
	*)
		sed -n "4,7p" "$0" | sed 's/^# \{0,1\}//' >&2
		exit 2
		;;
	esac
}

# kernel/build.sh sources this file for its helpers.
[ "${WPP_SOURCE_SH_LIB:-}" = 1 ] || src_main "$@"
