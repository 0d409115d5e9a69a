#!/usr/bin/env bash
# SPDX-License-Identifier: GPL-2.0-only
#
# kernel/build.sh - build the WPP Linux kernel.
#
#   kernel/build.sh emulated        bzImage for the QEMU q35 twin
#   kernel/build.sh board           Debian packages for the lab board (in Docker,
#                                   via hil/build/kernel.py; needs a Docker engine)
#   kernel/build.sh hash TARGET     print the cache key only (emulated or board)
#   kernel/build.sh board-in-container OUT WORK   (used by hil/build/kernel.py)
#
# Contract: progress and diagnostics on stderr; the LAST line of stdout is the
# absolute path of the result (the bzImage, or the directory holding the .debs).
# Exit status non-zero on failure, with a one-line "error:" and "hint:" on stderr.
#
# Inputs: Debian's linux-source-6.1 (pinned in kernel/source.sh, which fetches it into
# the cache whatever revision is installed, or none), kernel/patches/*.patch
# (applied in name order), the driver kernel/wpp/ (placed at drivers/misc/wpp/),
# firmware/wpp/include/wpp_abi.h (copied next to the driver), and
# kernel/config/<target>.config merged on top of tinyconfig.
#
# Cache ($WPP_HIL_CACHE or ~/.cache/wpp-hil)/kernel/:
#   source/<version>/                 the fetched tarball and its manifest (source.sh)
#   src/<version>/linux-source-6.1   pristine extracted source, never modified
#   work-<target>/{src,obj}           incremental build tree (rsync'd, checksummed)
#   out/<target>-<hash>/              finished results, keyed by all inputs
#
# Environment: JOBS (default 2), WPP_HIL_CACHE.
set -euo pipefail

JOBS="${JOBS:-2}"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WPP_SOURCE_SH_LIB=1
# shellcheck source=source.sh
. "$HERE/source.sh"
REPO="$(cd "$HERE/.." && pwd)"
ABI_HEADER="$REPO/firmware/wpp/include/wpp_abi.h"
CACHE="${WPP_HIL_CACHE:-$HOME/.cache/wpp-hil}/kernel"

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() {
	printf 'error: %s\n' "$1" >&2
	[ -n "${2:-}" ] && printf 'hint: %s\n' "$2" >&2
	exit 1
}

usage() {
	sed -n "4,13p" "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

# Sets SOURCE_VERSION and SOURCE_TAR: the pinned source, fetched into the cache (or,
# in the board's container, the tarball the host fetched and mounted).
check_source() {
	if [ -n "${WPP_IN_CONTAINER:-}" ]; then
		SOURCE_VERSION="${WPP_SOURCE_VERSION:?the host passes the source version}"
		SOURCE_TAR="/usr/src/$TARBALL_NAME"
	else
		SOURCE_TAR="$(fetch_tarball | tail -n1)"
		SOURCE_VERSION="$(basename "$(dirname "$SOURCE_TAR")")"
	fi
	[ -f "$SOURCE_TAR" ] || die "$SOURCE_TAR missing" "re-run; kernel/source.sh tarball fetches it"
}

# Cache key: everything that changes the result.
input_hash() {
	local target="$1"
	{
		echo "$SOURCE_PKG ${SOURCE_VERSION:-$(resolve_version)} $target"
		(cd "$REPO" && find kernel/build.sh kernel/config kernel/patches kernel/wpp \
			firmware/wpp/include/wpp_abi.h -type f \
			! -name '*.o' ! -name '*.cmd' ! -name '*~' -print0 |
			sort -z | xargs -0 sha256sum)
	} | sha256sum | cut -c1-16
}

# What the build used, for `hil cache status` and the nightly report: the source
# revision (pinned or a fallback), the package's sha256 and the compiler.
manifest() {
	local config="$1" srcman
	srcman="$(dirname "$SOURCE_TAR")/manifest"
	printf 'source_package %s\n' "$SOURCE_PKG"
	printf 'source_version %s\n' "$SOURCE_VERSION"
	printf 'source_pinned %s\n' "$PINNED_VERSION"
	[ -f "$srcman" ] && sed -n 's/^deb_sha256 /source_deb_sha256 /p' "$srcman"
	printf 'gcc %s\n' "$(gcc -dumpfullversion 2>/dev/null || gcc -dumpversion)"
	printf 'config_sha256 %s\n' "$(sha256sum "$config" | cut -d' ' -f1)"
}

# Extract the pristine tree once; a .done stamp marks a complete extraction.
pristine_tree() {
	local dir="$CACHE/src/$SOURCE_VERSION"
	mkdir -p "$CACHE/src"
	# two builds (the twin's, a dev tree) may start at once: one extracts, the other waits
	exec 7>"$CACHE/src/lock"
	flock 7 || die "cannot lock $CACHE/src"
	if [ ! -f "$dir/.done" ]; then
		log "extracting $SOURCE_TAR (once, ~1.5 GB)"
		rm -rf "$dir.tmp"
		mkdir -p "$dir.tmp"
		tar -xJf "$SOURCE_TAR" -C "$dir.tmp" || die "extracting $SOURCE_TAR failed" \
			"check free disk space in $CACHE, then re-run"
		rm -rf "$dir"
		mv "$dir.tmp" "$dir"
		touch "$dir/.done"
	fi
	exec 7>&-
	echo "$dir/linux-source-6.1"
}

# Lay out the patched tree (pristine + patches + driver) at $2. Hard links keep
# it cheap; every file a patch touches is un-linked first so the pristine tree
# is never modified.
patched_tree() {
	local pristine="$1" dest="$2" p f
	rm -rf "$dest"
	cp -al "$pristine" "$dest"
	for p in "$REPO"/kernel/patches/*.patch; do
		[ -e "$p" ] || continue
		for f in $(sed -n 's#^+++ b/##p; s#^--- a/##p' "$p" | sort -u); do
			if [ -f "$dest/$f" ]; then
				cp "$dest/$f" "$dest/$f.unlink" && mv "$dest/$f.unlink" "$dest/$f"
			fi
		done
		patch -d "$dest" -p1 -s --no-backup-if-mismatch -F0 <"$p" >&2 ||
			die "patch $(basename "$p") does not apply" \
				"rebase it with kernel/dev/tree.sh + kernel/dev/refresh.sh"
	done
	if [ -f "$REPO/kernel/wpp/Makefile" ]; then
		mkdir -p "$dest/drivers/misc/wpp"
		cp "$REPO"/kernel/wpp/*.[ch] "$REPO"/kernel/wpp/Kconfig "$REPO"/kernel/wpp/Makefile \
			"$dest/drivers/misc/wpp/"
		cp "$ABI_HEADER" "$dest/drivers/misc/wpp/wpp_abi.h"
	fi
}

# Check that each CONFIG_X=y / =n of the fragment made it into .config.
verify_config() {
	local frag="$1" config="$2" line sym val bad=0
	while IFS= read -r line; do
		case "$line" in CONFIG_*=y | CONFIG_*=n) ;; *) continue ;; esac
		sym="${line%%=*}"
		val="${line#*=}"
		if [ "$val" = y ]; then
			grep -qx "$sym=y" "$config" || { log "config: $sym=y did not stick"; bad=1; }
		else
			grep -q "^$sym=" "$config" && { log "config: $sym still set"; bad=1; }
		fi
	done <"$frag"
	[ "$bad" = 0 ] || die "kernel config fragment $(basename "$frag") not satisfied" \
		"a dependency is missing; see messages above and fix kernel/config/"
}

run_make() {
	local logf="$1"
	shift
	if ! make "$@" >>"$logf" 2>&1; then
		tail -n 40 "$logf" >&2
		die "make $* failed (full log: $logf)" "fix the error above and re-run"
	fi
}

# Like run_make, with a live count of compiled objects and an estimate of the time
# left: a cold build is silent for minutes otherwise. The expected total comes from
# the last build of the same target (first build: a default), so the percentage is
# honest on warm trees too, where few objects are rebuilt.
run_make_progress() {
	local logf="$1" label="$2" countf="$3"
	shift 3
	local expect start pid n=0 last=0 now pct left line
	expect="$(cat "$countf" 2>/dev/null || echo 1600)"
	start=$SECONDS
	make "$@" >>"$logf" 2>&1 &
	pid=$!
	while kill -0 "$pid" 2>/dev/null; do
		sleep 2
		n="$(grep -cE '^  (CC|AS|LD|AR|HOSTCC|OBJCOPY)' "$logf" || true)"
		now=$((SECONDS - start))
		pct=$((n * 100 / expect))
		[ "$pct" -le 99 ] || pct=99
		if [ "$n" -ge "$expect" ]; then
			left="~0s"
		elif [ "$n" -gt 20 ]; then
			left="$(((expect - n) * now / n))s"
		else
			left="?"
		fi
		line="$(printf '[%s] %3d%% %d/~%d objects, %s left (%ds)' "$label" "$pct" "$n" "$expect" "$left" "$now")"
		if [ -t 2 ]; then
			printf '\r\033[K%s' "$line" >&2
		elif [ $((now - last)) -ge 15 ]; then
			printf '%s\n' "$line" >&2
			last=$now
		fi
	done
	[ -t 2 ] && printf '\r\033[K' >&2
	if ! wait "$pid"; then
		tail -n 40 "$logf" >&2
		die "make $* failed (full log: $logf)" "fix the error above and re-run"
	fi
	n="$(grep -cE '^  (CC|AS|LD|AR|HOSTCC|OBJCOPY)' "$logf" || true)"
	# a cold build's count is the estimate for the next one; a warm one says little
	[ "$n" -lt $((expect / 2)) ] || echo "$n" >"$countf"
	printf '[%s] done: %d objects in %ds\n' "$label" "$n" $((SECONDS - start)) >&2
}

build_emulated() {
	local hash out work pristine frag
	check_source
	hash="$(input_hash emulated)"
	out="$CACHE/out/emulated-$hash"
	if [ -f "$out/bzImage" ]; then
		log "cached: $out"
		echo "$out/bzImage"
		return
	fi
	pristine="$(pristine_tree)"
	work="$CACHE/work-emulated"
	mkdir -p "$work"
	exec 9>"$work/lock"
	flock 9 || die "cannot lock $work"
	local logf="$work/build.log"
	: >"$logf"

	log "laying out patched tree"
	patched_tree "$pristine" "$work/want"
	if [ -d "$work/src" ]; then
		# Only files whose content changed get a new mtime: make stays incremental.
		rsync -rlc --delete "$work/want/" "$work/src/"
		rm -rf "$work/want"
	else
		mv "$work/want" "$work/src"
	fi

	log "configuring (tinyconfig + config/emulated.config)"
	frag="$REPO/kernel/config/emulated.config"
	rm -rf "$work/cfg"
	mkdir -p "$work/cfg" "$work/obj"
	run_make "$logf" -C "$work/src" O="$work/cfg" tinyconfig
	(cd "$work/src" && scripts/kconfig/merge_config.sh -m -O "$work/cfg" \
		"$work/cfg/.config" "$frag") >>"$logf" 2>&1 || die "merge_config failed (log: $logf)"
	run_make "$logf" -C "$work/src" O="$work/cfg" olddefconfig
	verify_config "$frag" "$work/cfg/.config"
	cmp -s "$work/cfg/.config" "$work/obj/.config" || cp "$work/cfg/.config" "$work/obj/.config"

	log "building bzImage with -j$JOBS (cold ~5-9 min; log: $logf)"
	run_make_progress "$logf" kernel "$work/objects" -C "$work/src" O="$work/obj" -j"$JOBS" bzImage

	mkdir -p "$out.tmp"
	cp "$work/obj/arch/x86/boot/bzImage" "$work/obj/.config" "$work/obj/System.map" "$out.tmp/"
	echo "$hash" >"$out.tmp/input-hash"
	manifest "$work/obj/.config" >"$out.tmp/manifest"
	rm -rf "$out"
	mv "$out.tmp" "$out"
	log "done: $(du -h "$out/bzImage" | cut -f1)"
	echo "$out/bzImage"
}

# Inside the board's Docker container (see hil/build/kernel.py): the distribution's
# generic config (Ubuntu's on the board) + config/board.config, then make bindeb-pkg.
build_board_in_container() {
	local out="$1" work="$2" base_config pristine frag
	check_source
	pristine="$(pristine_tree)"
	mkdir -p "$work" "$out"
	patched_tree "$pristine" "$work/src"
	base_config="$(ls /usr/src/linux-headers-*-generic/.config \
		/usr/src/linux-headers-*-amd64/.config 2>/dev/null | sort -V | tail -n1)"
	[ -n "$base_config" ] || die "no distribution kernel config in the container" \
		"the image must install linux-headers-generic (Ubuntu) or linux-headers-amd64 (Debian)"
	log "base config: $base_config"
	frag="$REPO/kernel/config/board.config"
	cp "$base_config" "$work/src/.config"
	(cd "$work/src" && scripts/kconfig/merge_config.sh -m .config "$frag") >&2
	make -C "$work/src" olddefconfig >&2
	verify_config "$frag" "$work/src/.config"
	run_make_progress "$work/build.log" kernel-board "$work/objects" -C "$work/src" -j"$JOBS" \
		bindeb-pkg LOCALVERSION=-wpp KDEB_PKGVERSION=1
	cp "$work"/*.deb "$out/"
	echo "$out"
}

main() {
	[ $# -ge 1 ] || usage
	case "$1" in
	emulated) build_emulated ;;
	hash) input_hash "${2:?target}" ;;
	board)
		shift
		local py="$REPO/.venv/bin/python"
		[ -x "$py" ] || py=python3
		cd "$REPO"
		exec "$py" -m hil.build.kernel board "$@"
		;;
	board-in-container)
		build_board_in_container "${2:?out dir}" "${3:?work dir}"
		;;
	*) usage ;;
	esac
}

# kernel/dev/*.sh source this file for its helpers.
[ "${WPP_BUILD_SH_LIB:-}" = 1 ] || main "$@"
