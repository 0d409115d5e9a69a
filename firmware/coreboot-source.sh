#!/usr/bin/env bash
# Fetch and unpack Debian's coreboot source (pinned), once, into the build cache.
# Prints the path of the unpacked tree on its last line of stdout.
#
#   coreboot-source.sh pin VAR   print the pinned COREBOOT_VERSION or COREBOOT_ORIG_SHA256
#                                (what a fetch would use) and do nothing else: the build
#                                scripts key their caches with it
#
# Debian's sources file names the archive URIs; we derive a deb-src entry from it at
# run time (in a file of our own) instead of writing any host name into the repo.
set -euo pipefail

COREBOOT_VERSION="${COREBOOT_VERSION:-4.15~dfsg-3}"
# sha256 of coreboot_4.15~dfsg.orig.tar.xz as published by Debian (checked after download)
COREBOOT_ORIG_SHA256="${COREBOOT_ORIG_SHA256:-c762654ff939214ce3848025228e6b7c213fa6925000afcbd616dec749691250}"
CACHE="${WPP_HIL_CACHE:-$HOME/.cache/wpp-hil}"
DEST="$CACHE/coreboot-src/$COREBOOT_VERSION"
TREE="$DEST/coreboot"

log() { echo "[coreboot-source] $*" >&2; }

if [ "${1:-}" = pin ]; then
	case "${2:-}" in
	COREBOOT_VERSION) echo "$COREBOOT_VERSION" ;;
	COREBOOT_ORIG_SHA256) echo "$COREBOOT_ORIG_SHA256" ;;
	*) echo "usage: $0 pin COREBOOT_VERSION|COREBOOT_ORIG_SHA256" >&2; exit 2 ;;
	esac
	exit 0
fi

if [ -f "$TREE/.wpp-unpacked" ]; then
	echo "$TREE"
	exit 0
fi

ensure_deb_src() {
	local own=/etc/apt/sources.list.d/wpp-hil-deb-src.sources
	if apt-cache showsrc coreboot 2>/dev/null | grep -q '^Package: coreboot'; then
		return 0
	fi
	local src=/etc/apt/sources.list.d/debian.sources
	if [ -f "$src" ]; then
		# Same stanzas as the machine's own Debian sources, as deb-src.
		sed -e 's/^Types:.*/Types: deb-src/' "$src" > "$own"
	elif [ -f /etc/apt/sources.list ]; then
		grep -E '^deb ' /etc/apt/sources.list | sed -e 's/^deb /deb-src /' \
			> /etc/apt/sources.list.d/wpp-hil-deb-src.list
	else
		log "no Debian sources file found to derive a deb-src entry from"
		exit 1
	fi
	log "added deb-src entry ($own); apt-get update"
	apt-get update -q >&2
}

ensure_deb_src
mkdir -p "$DEST"
cd "$DEST"
log "apt-get source coreboot=$COREBOOT_VERSION (download + unpack, ~250 MB)"
rm -rf "$TREE" coreboot-*/
apt-get source -q --download-only "coreboot=$COREBOOT_VERSION" >&2
orig=$(ls coreboot_*.orig.tar.xz | head -n1)
actual=$(sha256sum "$orig" | cut -d' ' -f1)
if [ -n "$COREBOOT_ORIG_SHA256" ] && [ "$actual" != "$COREBOOT_ORIG_SHA256" ]; then
	log "checksum mismatch for $orig: expected $COREBOOT_ORIG_SHA256, got $actual"
	exit 1
fi
dpkg-source -x --no-check ./*.dsc unpacked >&2
mv unpacked "$TREE"
echo "$actual  $orig" > "$DEST/orig.sha256"
touch "$TREE/.wpp-unpacked"
log "unpacked to $TREE"
echo "$TREE"
