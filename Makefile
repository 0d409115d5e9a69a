# wpp-hil: the two commands a new user needs are `make demo` and `make test`.
# Everything is installed by `make setup` (idempotent; both commands depend on it).

SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
HIL := $(VENV)/bin/hil
BOARD ?= emulated
PYTEST_ARGS ?=

# Debian packages: QEMU/flashrom for the twin, the coreboot host toolchain, the kernel
# build deps, the guest image's userland, and SSH peers for the tests. The kernel and
# coreboot sources are not among them: their build scripts fetch the pinned revisions
# into the cache (kernel/source.sh, firmware/coreboot-source.sh), whatever is installed.
# docker.io and debootstrap: the container build path (hil/build/container.py).
APT_PACKAGES := \
	qemu-system-x86 qemu-utils flashrom openssl e2fsprogs ser2net \
	build-essential gcc-multilib nasm acpica-tools m4 bison flex bc cpio xz-utils file kmod patch \
	dpkg-dev rsync git curl pkg-config zlib1g-dev libpci-dev libelf-dev libssl-dev \
	busybox-static dropbear-bin openssh-client openssh-server openssh-sftp-server gdb \
	redis-server redis-tools p7zip-full python3-venv python3-dev \
	docker.io debootstrap dosfstools mtools

.PHONY: setup apt venv test lint demo firmware kernel rootfs artifacts flash recover prune-cache clean-cache help

help:
	@echo "make setup    install Debian packages and the Python venv (.venv)"
	@echo "make demo     persist -> power cut -> restore on the emulated board"
	@echo "make test     the whole test suite (unit, parts, firmware, kernel, twin)"
	@echo "make lint     ruff, mypy (hil/), actionlint (.github/workflows)"
	@echo "make firmware / kernel / rootfs   build (or reuse cached) twin artifacts"
	@echo "make flash BOARD=<board> IMAGE=<rom>   hil flash write"
	@echo "make recover BOARD=<board>   hil recover (restore the last known-good ROM)"
	@echo "make prune-cache   hil cache prune (old builds)"
	@echo "make clean-cache   wipe ~/.cache/wpp-hil (cold-run check)"

setup: apt venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null \
		| grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "[setup] installing:" $$missing; \
		if [ "$$(id -u)" != 0 ]; then SUDO=sudo; fi; \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	else echo "[setup] Debian packages present"; fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/actionlint

firmware: setup
	$(HIL) build firmware --board $(BOARD)

kernel: setup
	$(HIL) build kernel --board $(BOARD)

rootfs: setup
	$(HIL) build rootfs --board emulated

artifacts: setup
	$(HIL) build all --board emulated

test: setup lint
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup
	$(HIL) demo

recover: setup
	$(HIL) recover --board $(BOARD)

flash: setup
	@test -n "$(IMAGE)" || { echo "usage: make flash BOARD=<board> IMAGE=<rom>"; exit 2; }
	$(HIL) flash write --board $(BOARD) $(IMAGE)

prune-cache: setup
	$(HIL) cache prune

clean-cache:
	rm -rf $${WPP_HIL_CACHE:-$$HOME/.cache/wpp-hil}
