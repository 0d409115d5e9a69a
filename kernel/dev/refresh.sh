#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# kernel/dev/refresh.sh DIR - write DIR's commits since wpp-base back to
# kernel/patches/ (git format-patch, stable output: zero commit ids, full blob ids, no
# signature) and copy back driver files that are real files (not symlinks)
# in DIR/drivers/misc/wpp/. Uncommitted changes outside the driver are an error.
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR="$(cd "$1" && pwd)"
WPP_BUILD_SH_LIB=1
# shellcheck source=../build.sh
. "$(dirname "${BASH_SOURCE[0]}")/../build.sh"

git -C "$DIR" rev-parse -q --verify wpp-base >/dev/null ||
	die "$DIR is not a tree from kernel/dev/tree.sh" "create one with kernel/dev/tree.sh DIR"
[ -z "$(git -C "$DIR" status --porcelain --untracked-files=no)" ] ||
	die "$DIR has uncommitted changes" "commit them (git commit -a) first"

rm -f "$REPO"/kernel/patches/*.patch
git -C "$DIR" format-patch -q --zero-commit --no-signature --no-stat --full-index \
	-o "$REPO/kernel/patches" wpp-base..HEAD
for f in "$DIR"/drivers/misc/wpp/*; do
	[ -L "$f" ] && continue
	case "$(basename "$f")" in wpp_abi.h) continue ;; esac
	cp "$f" "$REPO/kernel/wpp/"
done
log "kernel/patches: $(ls "$REPO"/kernel/patches/*.patch 2>/dev/null | wc -l) patches"
