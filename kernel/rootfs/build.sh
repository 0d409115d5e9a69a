#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# kernel/rootfs/build.sh - build the twin's guest initramfs (cpio newc, gzip).
#
#   kernel/rootfs/build.sh                 cached build
#   kernel/rootfs/build.sh --force         rebuild the cache entry
#   kernel/rootfs/build.sh --output FILE   fresh build written to FILE (cache untouched)
#   kernel/rootfs/build.sh --hash          print the cache key only
#   --compress gzip|xz|none                (default gzip) xz is ~30% smaller but
#                                          needs CONFIG_RD_XZ; none suits cbfstool -c lzma
#
# Contract: progress on stderr; the LAST line of stdout is the absolute path of
# the initramfs. Non-zero exit with "error:" and "hint:" lines on stderr.
#
# Cache ($WPP_HIL_CACHE or ~/.cache/wpp-hil):
#   rootfs/<hash>/initramfs.cpio.gz   the image (.cpio.xz, .cpio with --compress),
#                                     keyed by every input (this
#                                     directory, kernel/tools sources and the
#                                     driver headers they include, the ABI
#                                     header, cbmem sources, host binaries and
#                                     libraries copied, Debian package versions,
#                                     gcc version, the keys' public halves)
#   rootfs/<hash>/manifest.txt        cpio listing; build-info.txt: versions, sizes
#   rootfs/cbmem-<hash>/cbmem         static cbmem from the pinned coreboot tree
#   keys/twin_ed25519{,.pub}          ssh client key (OpenSSH format), root login
#   keys/twin_host_ed25519{,.pub}     dropbear host key (+ OpenSSH public line)
# Keys are generated once and never rotated by this script, so the image and
# known_hosts entries stay stable.
#
# Same inputs give the same bytes: fixed mtimes (SOURCE_DATE_EPOCH), root
# ownership, sorted cpio order, cpio --reproducible, gzip -n.
set -euo pipefail
umask 022

SOURCE_DATE_EPOCH=1700000000
export SOURCE_DATE_EPOCH LC_ALL=C
DEB_PACKAGES=(busybox-static dropbear-bin redis-server redis-tools p7zip-full openssh-sftp-server libc6)

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CACHE_ROOT="${WPP_HIL_CACHE:-$HOME/.cache/wpp-hil}"
KEYS="$CACHE_ROOT/keys"
ABI_HEADER="$REPO/firmware/wpp/include/wpp_abi.h"

log() { printf 'rootfs: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$1" >&2
	[ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

MODE=cached
OUTPUT=
COMPRESS=gzip
while [ $# -gt 0 ]; do
	case "$1" in
	--force) MODE=force ;;
	--hash) MODE="hash" ;;
	--compress)
		[ $# -ge 2 ] || die "--compress needs gzip, xz or none" "kernel/rootfs/build.sh --compress xz"
		COMPRESS="$2"
		shift
		;;
	--output)
		[ $# -ge 2 ] || die "--output needs a file name" "kernel/rootfs/build.sh --output /tmp/x.cpio.gz"
		MODE=output
		OUTPUT="$2"
		shift
		;;
	-h | --help)
		sed -n '4,9p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*) die "unknown argument '$1'" "kernel/rootfs/build.sh [--force | --hash | --output FILE]" ;;
	esac
	shift
done

# ---------------------------------------------------------------- host tools
need() { # need <command> <debian package>
	command -v "$1" >/dev/null 2>&1 || die "missing tool '$1'" "apt-get install $2"
}
need gcc gcc
need make make
need cpio cpio
need gzip gzip
need ldd libc-bin
need ssh-keygen openssh-client
need dropbearkey dropbear-bin
need sha256sum coreutils
case "$COMPRESS" in
gzip) EXT=.cpio.gz ;;
xz) EXT=.cpio.xz; need xz xz-utils ;;
none) EXT=.cpio ;;
*) die "unknown compression '$COMPRESS'" "use --compress gzip, xz or none" ;;
esac
for f in /bin/busybox /usr/sbin/dropbear /usr/lib/openssh/sftp-server /usr/bin/redis-server \
	/usr/bin/redis-cli /usr/bin/redis-benchmark /usr/lib/p7zip/7z /usr/lib/p7zip/7z.so; do
	[ -e "$f" ] || die "missing $f" "apt-get install ${DEB_PACKAGES[*]}"
done
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static /bin/busybox || die "/bin/busybox is dynamically linked" "apt-get install busybox-static"
[ "$(id -u)" = 0 ] || need fakeroot fakeroot
# The coreboot tree (for cbmem) is fetched only when cbmem must be built: its
# pinned version and orig checksum key it (cbmem_key), so --hash needs no source.
COREBOOT_SH="$REPO/firmware/coreboot-source.sh"
coreboot_pin() { # coreboot_pin VAR: the pinned value, as coreboot-source.sh says it
	"$COREBOOT_SH" pin "$1"
}
coreboot_tree() {
	local tree
	tree="$("$COREBOOT_SH" 2>/dev/null | tail -n1)" ||
		die "cannot locate the coreboot source tree" "run firmware/coreboot-source.sh and read its error"
	[ -f "$tree/util/cbmem/cbmem.c" ] || die "no util/cbmem in $tree" "run firmware/coreboot-source.sh"
	echo "$tree"
}

# ---------------------------------------------------------------- keys
ensure_keys() {
	mkdir -p "$KEYS"
	chmod 700 "$KEYS"
	(
		flock 9
		if [ ! -f "$KEYS/twin_ed25519" ]; then
			log "generating client key $KEYS/twin_ed25519"
			ssh-keygen -q -t ed25519 -N '' -C wpp-hil-twin -f "$KEYS/twin_ed25519" >&2
		fi
		[ -f "$KEYS/twin_ed25519.pub" ] || ssh-keygen -y -f "$KEYS/twin_ed25519" >"$KEYS/twin_ed25519.pub"
		if [ ! -f "$KEYS/twin_host_ed25519" ]; then
			log "generating dropbear host key $KEYS/twin_host_ed25519"
			dropbearkey -t ed25519 -f "$KEYS/twin_host_ed25519.tmp" >/dev/null 2>&1
			mv "$KEYS/twin_host_ed25519.tmp" "$KEYS/twin_host_ed25519"
		fi
		if [ ! -f "$KEYS/twin_host_ed25519.pub" ]; then
			dropbearkey -y -f "$KEYS/twin_host_ed25519" 2>/dev/null |
				awk '/^ssh-ed25519 /{print $1, $2, "wpp-twin"}' >"$KEYS/twin_host_ed25519.pub"
		fi
		chmod 600 "$KEYS/twin_ed25519" "$KEYS/twin_host_ed25519"
	) 9>"$KEYS/.lock"
	[ -s "$KEYS/twin_host_ed25519.pub" ] || die "could not derive the host public key" \
		"delete $KEYS/twin_host_ed25519* and rerun"
}

# ---------------------------------------------------------------- inputs
# Host files copied into the image: "<source> <destination in image>".
host_files() {
	echo "/bin/busybox bin/busybox"
	echo "/usr/sbin/dropbear usr/sbin/dropbear"
	echo "/usr/lib/openssh/sftp-server usr/lib/sftp-server"
	echo "$(readlink -f /usr/bin/redis-server) usr/bin/redis-server"
	echo "/usr/bin/redis-cli usr/bin/redis-cli"
	echo "/usr/bin/redis-benchmark usr/bin/redis-benchmark"
	echo "/usr/lib/p7zip/7z usr/lib/p7zip/7z"
	echo "/usr/lib/p7zip/7z.so usr/lib/p7zip/7z.so"
}

# Shared libraries the dynamic host files need (resolved paths), plus the loader.
host_libs() {
	host_files | while read -r src _; do
		file_is_static "$src" && continue
		ldd "$src" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
	done | sort -u
}

# the tools' sources and the driver's user-ABI headers they include (wpp-recreate
# reads the PCB and calls the recreate ioctls)
tool_sources() {
	{
		find "$REPO/kernel/tools" "$REPO/firmware/tests/guest" -maxdepth 1 -type f \
			\( -name '*.c' -o -name '*.h' -o -name Makefile \) 2>/dev/null
		ls "$REPO/kernel/wpp/wpp_pcb.h" "$REPO/kernel/wpp/wpp_recreate.h"
	} | sort
}

cbmem_key() { # the pinned coreboot source (checked against its orig sha256) + compiler
	{
		echo "coreboot $(coreboot_pin COREBOOT_VERSION) orig $(coreboot_pin COREBOOT_ORIG_SHA256)"
		gcc --version | head -n1
	} | sha256sum | cut -c1-16
}

input_hash() {
	{
		echo "epoch $SOURCE_DATE_EPOCH compress $COMPRESS"
		(cd "$REPO" && find kernel/rootfs -type f ! -name '*.md' | sort | xargs sha256sum)
		(cd "$REPO" && tool_sources | sed "s|^$REPO/||" | xargs -r sha256sum)
		sha256sum "$ABI_HEADER" | sed "s|$REPO/||"
		echo "cbmem $(cbmem_key)"
		host_files | while read -r src dst; do echo "$(sha256sum <"$src" | cut -c1-64) $dst"; done
		host_libs | xargs sha256sum
		dpkg-query -W "${DEB_PACKAGES[@]}" 2>/dev/null || true
		gcc --version | head -n1
		cat "$KEYS/twin_ed25519.pub"
		sha256sum <"$KEYS/twin_host_ed25519"
		[ "$(id -u)" = 0 ] && echo root || echo fakeroot
	} | sha256sum | cut -c1-16
}

# ---------------------------------------------------------------- builders
build_cbmem() { # prints the path of the cached static cbmem
	local dir scratch
	dir="$CACHE_ROOT/rootfs/cbmem-$(cbmem_key)"
	if [ ! -x "$dir/cbmem" ]; then
		COREBOOT="$(coreboot_tree)" || exit 1
		log "building static cbmem from $COREBOOT"
		scratch="$(mktemp -d "$CACHE_ROOT/rootfs/cbmem-build.XXXXXX")"
		cp -r "$COREBOOT/util/cbmem" "$scratch/"
		make -s -C "$scratch/cbmem" ROOT="$COREBOOT/src" CC='gcc -static' >&2 ||
			{ rm -rf "$scratch"; die "cbmem build failed" "see the compiler output above"; }
		strip "$scratch/cbmem/cbmem"
		mkdir -p "$dir"
		mv "$scratch/cbmem/cbmem" "$dir/cbmem.tmp" && mv "$dir/cbmem.tmp" "$dir/cbmem"
		rm -rf "$scratch"
	fi
	echo "$dir/cbmem"
}

populate() { # populate <staging dir>
	local st="$1" src dst d lib
	for d in bin sbin usr/bin usr/sbin usr/lib/p7zip lib/x86_64-linux-gnu lib64 etc/dropbear \
		root/.ssh proc sys dev tmp run var/log mnt; do
		mkdir -p "$st/$d"
	done

	host_files | while read -r src dst; do cp -L "$src" "$st/$dst"; done
	host_libs | while read -r lib; do
		case "$lib" in
		/lib64/*) cp -L "$lib" "$st/lib64/$(basename "$lib")" ;;
		*) cp -L "$lib" "$st/lib/x86_64-linux-gnu/$(basename "$lib")" ;;
		esac
	done
	# Applet links: busybox's own list, never over a real program.
	/bin/busybox --list-full | while read -r applet; do
		[ -e "$st/$applet" ] || [ -L "$st/$applet" ] || ln -s /bin/busybox "$st/$applet"
	done
	printf '#!/bin/sh\nexec /usr/lib/p7zip/7z "$@"\n' >"$st/usr/bin/7z"
	chmod 755 "$st/usr/bin/7z"

	cp "$(build_cbmem)" "$st/usr/sbin/cbmem"
	log "building kernel/tools"
	make -s -C "$REPO/kernel/tools" OUT="$WORK/tools" -j2 >&2 ||
		die "kernel/tools build failed" "make -C kernel/tools shows the compiler error"
	for b in "$WORK"/tools/*; do cp "$b" "$st/usr/bin/"; done
	# A file that exists with the same bytes on every boot, for
	# wpp-counter --private-map across a power loss (tmpfs /tmp does not survive).
	mkdir -p "$st/usr/share/wpp"
	"$WORK/tools/wpp-counter" --once --period-ms 0 --buffer-mib 0 \
		--private-map "$st/usr/share/wpp/private-map.bin" \
		--log-file "$WORK/counter.log" --state-file "$WORK/counter.state" >/dev/null
	chmod 644 "$st/usr/share/wpp/private-map.bin"

	cp "$HERE/init" "$st/init"
	chmod 755 "$st/init"
	cp -r "$HERE/files/etc/." "$st/etc/"
	chmod 755 "$st/etc/acpi/PWRF/00000080"
	chmod 600 "$st/etc/shadow"
	cp "$KEYS/twin_host_ed25519" "$st/etc/dropbear/dropbear_ed25519_host_key"
	chmod 600 "$st/etc/dropbear/dropbear_ed25519_host_key"
	cp "$KEYS/twin_ed25519.pub" "$st/root/.ssh/authorized_keys"
	chmod 700 "$st/root" "$st/root/.ssh"
	chmod 600 "$st/root/.ssh/authorized_keys"
	chmod 1777 "$st/tmp"
}

# Pack as root (or under fakeroot): /dev/console must be a real device node for
# the kernel to give /init a console, and every file must be owned by root.
pack() { # pack <staging dir> <output file>
	# shellcheck disable=SC2016 # expanded by the inner shell
	local script='set -e
		cd "$1"
		mknod -m 600 dev/console c 5 1
		mknod -m 666 dev/null c 1 3
		find . -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
		find . -mindepth 1 -printf "%P\n" | sort |
			cpio -o -H newc -R 0:0 --reproducible --quiet | compress >"$2"'
	local compress
	case "$COMPRESS" in
	gzip) compress='gzip -9 -n' ;;
	xz) compress='xz -9 --check=crc32 -T1' ;; # the kernel's unxz wants crc32
	none) compress='cat' ;;
	esac
	script="compress() { $compress; }
$script"
	if [ "$(id -u)" = 0 ]; then
		sh -c "$script" pack "$1" "$2"
	else
		fakeroot -- sh -c "$script" pack "$1" "$2"
	fi
}

# ---------------------------------------------------------------- main
if [ "$MODE" = hash ]; then
	# a key only: nothing fetched, generated or written
	[ -f "$KEYS/twin_ed25519.pub" ] && [ -f "$KEYS/twin_host_ed25519" ] ||
		die "no key yet: the twin's SSH keys (part of the image) are made by its first build" \
			"kernel/rootfs/build.sh (or hil build rootfs)"
	input_hash
	exit 0
fi
ensure_keys
HASH="$(input_hash)"
DEST_DIR="$CACHE_ROOT/rootfs/$HASH"
IMAGE="$DEST_DIR/initramfs$EXT"
if [ "$MODE" = cached ] && [ -f "$IMAGE" ]; then
	log "cached $HASH"
	echo "$IMAGE"
	exit 0
fi

mkdir -p "$CACHE_ROOT/rootfs"
WORK="$(mktemp -d "$CACHE_ROOT/rootfs/build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
START=$(date +%s)
log "building initramfs $HASH"
populate "$WORK/stage"
pack "$WORK/stage" "$WORK/image"

if [ "$MODE" = output ]; then
	mkdir -p "$(dirname "$OUTPUT")"
	mv "$WORK/image" "$OUTPUT"
	log "done in $(($(date +%s) - START)) s"
	echo "$(cd "$(dirname "$OUTPUT")" && pwd)/$(basename "$OUTPUT")"
	exit 0
fi

mkdir -p "$DEST_DIR"
(cd "$WORK/stage" && find . -mindepth 1 -printf '%M %s %P\n' | sort -k3) >"$DEST_DIR/manifest.txt"
{
	echo "hash $HASH"
	echo "sha256 $(sha256sum <"$WORK/image" | cut -c1-64)"
	echo "compressed_bytes $(stat -c %s "$WORK/image")"
	echo "unpacked_bytes $(du -sb "$WORK/stage" | cut -f1)"
	echo "build_seconds $(($(date +%s) - START))"
	dpkg-query -W "${DEB_PACKAGES[@]}" 2>/dev/null || true
} >"$DEST_DIR/build-info.txt"
mv "$WORK/image" "$IMAGE.tmp"
mv "$IMAGE.tmp" "$IMAGE"
log "done in $(($(date +%s) - START)) s: $(stat -c %s "$IMAGE") bytes"
echo "$IMAGE"
