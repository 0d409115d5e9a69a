#!/usr/bin/env bash
# Build WPP firmware.
#
#   firmware/build.sh emulated [--hash] [--kernel PATH --initrd PATH --cmdline STR]
#       coreboot 4.15 for QEMU q35 (SMM in TSEG, WPP handler, 16 MiB ROM), with an
#       optional Linux payload. Cached under $WPP_HIL_CACHE/firmware/<hash>/.
#       --hash prints the keys only (base_hash=..., then hash=...): no download,
#       no build, nothing written.
#   firmware/build.sh board [--out DIR]
#       Dasharo coreboot for the MSI PRO Z690-A (msi_ms7d25) with the WPP patches.
#       Runs INSIDE Dasharo's SDK container (hil/build_firmware.py starts it).
#
# Contract: progress goes to stderr; the LAST line of stdout is the absolute path
# of the ROM. Exit status non-zero on failure (with the reason on stderr).
#
# Emulated build caching: a base ROM (coreboot without payload) is keyed by the
# hash of every coreboot input (pinned source checksum, patches, WPP sources,
# config, compiler version, this script); the payload is added to a copy of it
# with the cbfstool built alongside, so a kernel change costs seconds.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE="${WPP_HIL_CACHE:-$HOME/.cache/wpp-hil}"
FWCACHE="$CACHE/firmware"
JOBS="${WPP_BUILD_JOBS:-2}"
DEFAULT_CMDLINE="console=ttyS0,115200"

log() { echo "[firmware] $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
	sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

need() {
	command -v "$1" >/dev/null 2>&1 || die "required tool '$1' not found (apt-get install $2)"
}

# sha256 over names + contents of the given files/dirs (sorted), plus strings on stdin.
hash_tree() {
	local f
	{
		for f in $(find "$@" -type f | LC_ALL=C sort); do
			printf '%s\0' "${f#"$HERE"/}"
			sha256sum < "$f" | cut -d' ' -f1
		done
		cat
	} | sha256sum | cut -d' ' -f1
}

# ------------------------------------------------------------------ emulated

base_inputs() {
	echo "$HERE/coreboot/patches" "$HERE/coreboot/drivers-wpp" \
		"$HERE/coreboot/configs/qemu-q35.defconfig" "$HERE/wpp/src" \
		"$HERE/wpp/include" "$HERE/build.sh"
}

apply_patches() {
	local tree=$1 p f
	for p in $(LC_ALL=C ls "$HERE"/coreboot/patches/*.patch); do
		# The tree is a hard-linked copy of the cached source: give every file
		# the patch touches its own inode first so the cache stays pristine.
		for f in $(sed -n 's#^+++ b/\([^[:space:]]*\).*#\1#p' "$p"); do
			if [ -e "$tree/$f" ]; then
				cp -p "$tree/$f" "$tree/$f.wpp-unlink"
				mv -f "$tree/$f.wpp-unlink" "$tree/$f"
			fi
		done
		log "patch $(basename "$p")"
		patch -d "$tree" -p1 -s --no-backup-if-mismatch < "$p" >&2 ||
			die "patch $(basename "$p") does not apply"
	done
}

install_driver() {
	local tree=$1 dst="$1/src/drivers/wpp"
	rm -rf "$dst"
	mkdir -p "$dst"
	cp "$HERE"/coreboot/drivers-wpp/* "$dst/"
	cp "$HERE"/wpp/src/*.c "$HERE"/wpp/include/*.h "$dst/"
}

build_base() {
	local basehash=$1 out=$2 tree src work
	need make make
	need gcc gcc
	need nasm nasm
	need iasl acpica-tools
	need patch patch
	echo 'int main(void){return 0;}' | gcc -m32 -x c - -o /dev/null 2>/dev/null ||
		die "gcc cannot build 32-bit code (apt-get install gcc-multilib)"
	src=$("$HERE/coreboot-source.sh" | tail -n1)
	[ -d "$src/src" ] || die "coreboot source tree not found ($src)"
	work="$FWCACHE/work/$basehash"
	tree="$work/coreboot"
	rm -rf "$work"
	mkdir -p "$work"
	log "copying coreboot tree (hard links) to $work"
	# hard links where the source shares our file system; a copy where it cannot (the
	# container build mounts the pinned tree read-only from the host)
	cp -al "$src" "$tree" 2>/dev/null || { rm -rf "$tree"; cp -a "$src" "$tree"; }
	apply_patches "$tree"
	install_driver "$tree"
	cp "$HERE/coreboot/configs/qemu-q35.defconfig" "$tree/.config"
	log "make olddefconfig"
	make -C "$tree" olddefconfig >"$work/build.log" 2>&1 ||
		{ tail -n 30 "$work/build.log" >&2; die "olddefconfig failed (log: $work/build.log)"; }
	grep -q '^CONFIG_DRIVERS_WPP=y' "$tree/.config" || die "CONFIG_DRIVERS_WPP not enabled"
	log "building coreboot (make -j$JOBS, ~1 min; log: $work/build.log)"
	if ! make -C "$tree" -j"$JOBS" >>"$work/build.log" 2>&1; then
		grep -E 'error|Error' "$work/build.log" | head -n 20 >&2 || true
		tail -n 15 "$work/build.log" >&2
		die "coreboot build failed (tree kept: $tree)"
	fi
	local tmp="$out.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp "$tree/build/coreboot.rom" "$tmp/coreboot.rom"
	cp "$tree/build/cbfstool" "$tmp/cbfstool"
	cp "$tree/.config" "$tmp/config"
	cp "$work/build.log" "$tmp/build.log"
	sed -n 's/^CONFIG_WPP_\(.*\)$/\1/p' "$tree/.config" > "$tmp/wpp-config"
	rm -rf "$out"
	mv "$tmp" "$out"
	rm -rf "$work"
	log "base ROM cached: $out/coreboot.rom"
}

write_manifest() {
	# $1 out dir, then key=value pairs (values may be empty)
	local out=$1
	shift
	python3 - "$out/manifest.json" "$@" <<'PY'
import json, sys
path, *pairs = sys.argv[1:]
data = {}
for p in pairs:
    k, _, v = p.partition("=")
    data[k] = v
json.dump(data, open(path, "w"), indent=2, sort_keys=True)
open(path, "a").write("\n")
PY
}

cmd_emulated() {
	local kernel="" initrd="" cmdline="" have_cmdline=0 hash_only=0
	while [ $# -gt 0 ]; do
		case "$1" in
		--hash) hash_only=1; shift ;;
		--kernel) kernel=${2:?--kernel needs a path}; shift 2 ;;
		--initrd) initrd=${2:?--initrd needs a path}; shift 2 ;;
		--cmdline) cmdline=${2-}; have_cmdline=1; shift 2 ;;
		-h|--help) usage ;;
		*) die "unknown option '$1' (see --help)" ;;
		esac
	done
	[ -n "$kernel" ] || [ -z "$initrd" ] || die "--initrd needs --kernel"
	[ -z "$kernel" ] || [ -f "$kernel" ] || die "kernel not found: $kernel"
	[ -z "$initrd" ] || [ -f "$initrd" ] || die "initrd not found: $initrd"
	[ "$have_cmdline" = 1 ] || cmdline=$DEFAULT_CMDLINE
	[ -z "$kernel" ] || kernel=$(readlink -f "$kernel")
	[ -z "$initrd" ] || initrd=$(readlink -f "$initrd")

	# The keys: every input, known without the source, a build or the cache.
	local srcsum cb_version gccv basehash base
	cb_version=$("$HERE/coreboot-source.sh" pin COREBOOT_VERSION)
	srcsum=$("$HERE/coreboot-source.sh" pin COREBOOT_ORIG_SHA256)
	gccv=$(gcc --version | head -n1)
	# shellcheck disable=SC2046
	basehash=$(printf '%s\n' "coreboot=$cb_version" "orig=$srcsum" "gcc=$gccv" |
		hash_tree $(base_inputs))
	local ksum="" isum="" hash out
	[ -z "$kernel" ] || ksum=$(sha256sum < "$kernel" | cut -d' ' -f1)
	[ -z "$initrd" ] || isum=$(sha256sum < "$initrd" | cut -d' ' -f1)
	if [ -n "$kernel" ]; then
		hash=$(printf '%s\n' "base=$basehash" "kernel=$ksum" "initrd=$isum" \
			"cmdline=$cmdline" | sha256sum | cut -d' ' -f1)
	else
		hash=$(printf '%s\n' "base=$basehash" "nopayload" | sha256sum | cut -d' ' -f1)
	fi
	if [ "$hash_only" = 1 ]; then
		echo "base_hash=$basehash"
		echo "hash=$hash"
		return 0
	fi

	mkdir -p "$FWCACHE"
	exec 9>"$FWCACHE/.lock"
	flock 9

	base="$FWCACHE/base/$basehash"
	if [ -f "$base/coreboot.rom" ] && [ -x "$base/cbfstool" ]; then
		log "base ROM from cache ($basehash)"
	else
		build_base "$basehash" "$base"
	fi

	out="$FWCACHE/$hash"
	if [ -f "$out/coreboot.rom" ] && [ -f "$out/manifest.json" ] &&
		(cd "$out" && sha256sum -c --status coreboot.rom.sha256); then
		log "ROM from cache ($hash)"
		echo "$out/coreboot.rom"
		return 0
	fi

	local tmp="$out.tmp.$$"
	rm -rf "$tmp"
	mkdir -p "$tmp"
	cp "$base/coreboot.rom" "$tmp/coreboot.rom"
	if [ -n "$kernel" ]; then
		log "adding Linux payload (kernel $(basename "$kernel"), initrd ${initrd:+$(basename "$initrd")})"
		local args=(add-payload -f "$kernel" -n fallback/payload -c none -C "$cmdline")
		[ -z "$initrd" ] || args+=(-I "$initrd")
		"$base/cbfstool" "$tmp/coreboot.rom" "${args[@]}" >&2 ||
			die "cbfstool add-payload failed (ROM too small for kernel+initrd?)"
	fi
	"$base/cbfstool" "$tmp/coreboot.rom" print > "$tmp/cbfs.txt" 2>&1 || true
	(cd "$tmp" && sha256sum coreboot.rom > coreboot.rom.sha256)
	write_manifest "$tmp" \
		"board=emulated" \
		"target=emulation/qemu-q35" \
		"coreboot_version=$cb_version" \
		"coreboot_orig_sha256=$srcsum" \
		"base_hash=$basehash" \
		"hash=$hash" \
		"compiler=$gccv" \
		"kernel=$kernel" "kernel_sha256=$ksum" \
		"initrd=$initrd" "initrd_sha256=$isum" \
		"cmdline=$([ -n "$kernel" ] && echo "$cmdline")" \
		"wpp_abi_version=$(sed -n 's/^#define WPP_ABI_VERSION[[:space:]]*\([0-9]*\).*/\1/p' \
			"$HERE/wpp/include/wpp_abi.h")" \
		"wpp_region=$(sed -n 's/^REGION_BASE=//p' "$base/wpp-config"):$(sed -n 's/^REGION_SIZE=//p' "$base/wpp-config")" \
		"rom_sha256=$(cut -d' ' -f1 "$tmp/coreboot.rom.sha256")" \
		"built_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
	rm -rf "$out"
	mv "$tmp" "$out"
	log "ROM: $out/coreboot.rom ($(stat -c %s "$out/coreboot.rom") bytes)"
	echo "$out/coreboot.rom"
}

# ------------------------------------------------------------------ board

cmd_board() {
	exec "$HERE/board/build-board.sh" "$@"
}

case "${1:-}" in
emulated) shift; cmd_emulated "$@" ;;
board) shift; cmd_board "$@" ;;
-h|--help|"") usage ;;
*) die "unknown target '$1' (emulated | board)" ;;
esac
