#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# kernel/dev/tree.sh DIR - lay out an editable kernel tree for WPP development.
#
# DIR becomes a git repository: the pristine linux-source-6.1 is the first
# commit (tagged wpp-base), then each kernel/patches/*.patch is applied as one
# commit (git am). The driver is symlinked at drivers/misc/wpp/ to the repo's
# kernel/wpp/ (plus wpp_abi.h to firmware/wpp/include/), so driver edits land in
# the repo directly and are not part of the patch series.
#
# Edit core-kernel files, commit (or rebase -i to amend a patch), then run
# kernel/dev/refresh.sh DIR to write the series back to kernel/patches/.
# Build inside DIR with e.g.: make O=DIR-obj tinyconfig ... (or simply run
# kernel/build.sh emulated after refresh.sh, which builds incrementally).
set -euo pipefail

[ $# -eq 1 ] || { echo "usage: $0 DIR" >&2; exit 2; }
DIR="$1"
[ ! -e "$DIR" ] || { echo "error: $DIR exists" >&2; echo "hint: pick a new directory" >&2; exit 1; }

WPP_BUILD_SH_LIB=1
# shellcheck source=../build.sh
. "$(dirname "${BASH_SOURCE[0]}")/../build.sh"

check_source
pristine="$(pristine_tree)"
log "copying pristine tree to $DIR"
cp -a "$pristine" "$DIR"
DIR="$(cd "$DIR" && pwd)"
cd "$DIR"
git init -q
git config user.name "${GIT_AUTHOR_NAME:-wpp developer}"
git config user.email "${GIT_AUTHOR_EMAIL:-wpp@localhost}"
printf '/drivers/misc/wpp/\n' >>.git/info/exclude
log "committing the pristine tree (takes a minute)"
# Debian's tree ignores everything ("/*" in .gitignore): add with -f. New files
# in later commits need "git add -f" too.
git add -f -A . >/dev/null
git commit -q -m "linux-source-6.1 $SOURCE_VERSION (pristine)"
git tag wpp-base
for p in "$REPO"/kernel/patches/*.patch; do
	[ -e "$p" ] || continue
	git am -q "$p" || die "git am $(basename "$p") failed" "resolve in $DIR, then git am --continue"
done
mkdir -p drivers/misc/wpp
for f in "$REPO"/kernel/wpp/*; do
	ln -s "$f" drivers/misc/wpp/
done
ln -sf "$REPO/firmware/wpp/include/wpp_abi.h" drivers/misc/wpp/wpp_abi.h
log "tree ready: $DIR (base tag wpp-base, $(git rev-list --count wpp-base..HEAD) patches)"
echo "$DIR"
