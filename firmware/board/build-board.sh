#!/usr/bin/env bash
# Build Dasharo coreboot for the MSI PRO Z690-A (msi_ms7d25) with the WPP handler.
# Runs INSIDE Dasharo's SDK container (started by hil/build_firmware.py), with:
#   /home/coreboot/coreboot  Dasharo coreboot checkout at the pinned tag (read-only use:
#                            it is copied before patching), submodules initialised
#   /wpp                     this repository (read-only)
#   /out                     output directory
# Usage: build-board.sh [--tree DIR] [--out DIR] [--config FILE] [--jobs N]
# Progress on stderr; the LAST line of stdout is the ROM path.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FW=$(cd "$HERE/.." && pwd)
TREE=/home/coreboot/coreboot
OUT=/out
CONFIG=configs/config.msi_ms7d25
JOBS=$(nproc 2>/dev/null || echo 2)

log() { echo "[firmware/board] $*" >&2; }
die() { log "error: $*"; exit 1; }

while [ $# -gt 0 ]; do
	case "$1" in
	--tree) TREE=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--config) CONFIG=$2; shift 2 ;;
	--jobs) JOBS=$2; shift 2 ;;
	*) die "unknown option '$1'" ;;
	esac
done

[ -f "$TREE/Makefile" ] || die "no coreboot tree at $TREE (mount the Dasharo checkout there)"
[ -f "$TREE/$CONFIG" ] || die "Dasharo config $CONFIG not found in $TREE (wrong tag?)"
board_dir="src/mainboard/msi/ms7d25"
[ -d "$TREE/$board_dir" ] || die "$board_dir missing: not a Dasharo msi_ms7d25 tree"

WORK=$(mktemp -d /tmp/wpp-board.XXXXXX)
log "copying $TREE to $WORK/coreboot"
cp -a "$TREE" "$WORK/coreboot"
cd "$WORK/coreboot"

# WPP driver: the same sources as the twin's (core, FPGA rings, coreboot glue).
mkdir -p src/drivers/wpp
cp "$FW"/coreboot/drivers-wpp/* "$FW"/wpp/src/*.c "$FW"/wpp/include/*.h src/drivers/wpp/

# APMC hook: Dasharo's SMI dispatch calls the weak mainboard_smi_apmc() for APMC
# values it does not handle; the board file must not define it already.
smi="$board_dir/smihandler.c"
if [ ! -f "$smi" ]; then
	printf '/* SPDX-License-Identifier: GPL-2.0-only */\n\n#include <cpu/x86/smm.h>\n' > "$smi"
	grep -q 'smihandler.c' "$board_dir/Makefile.inc" 2>/dev/null ||
		echo 'smm-y += smihandler.c' >> "$board_dir/Makefile.inc"
fi
if grep -q 'mainboard_smi_apmc' "$smi"; then
	die "$smi already defines mainboard_smi_apmc: call wpp_smi_apmc() from it by hand"
fi
cat >> "$smi" <<'C'

#include <drivers/wpp/wpp_coreboot.h>

/* WPP: events 0xa0-0xac from the kernel, 0xad from ramstage (handoff). */
int mainboard_smi_apmc(u8 data)
{
	return wpp_smi_apmc(data);
}
C

log "config: $CONFIG + msi-ms7d25.fragment"
cp "$CONFIG" .config
cat "$FW/coreboot/configs/msi-ms7d25.fragment" >> .config
make olddefconfig >&2
grep -q '^CONFIG_DRIVERS_WPP=y' .config || die "CONFIG_DRIVERS_WPP did not stick (Kconfig deps?)"
grep -q '^CONFIG_WPP_PLATFORM_FPGA=y' .config || die "CONFIG_WPP_PLATFORM_FPGA did not stick"
log "make -j$JOBS"
make -j"$JOBS" >&2 || die "coreboot build failed"

mkdir -p "$OUT"
cp build/coreboot.rom "$OUT/coreboot.rom"
cp .config "$OUT/config"
(cd "$OUT" && sha256sum coreboot.rom > coreboot.rom.sha256)
tag=$(git -C "$TREE" describe --tags --always 2>/dev/null || echo unknown)
cat > "$OUT/manifest.json" <<JSON
{
  "board": "msi-z690",
  "dasharo_revision": "$tag",
  "dasharo_config": "$CONFIG",
  "rom_sha256": "$(cut -d' ' -f1 "$OUT/coreboot.rom.sha256")",
  "built_at": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
JSON
rm -rf "$WORK"
log "ROM: $OUT/coreboot.rom"
echo "$OUT/coreboot.rom"
