# Build environment for the lab board's kernel packages. The board runs Ubuntu 22.04 (the
# default BASE); a Debian base works too (CI machines can only make Debian images).
# hil/build_kernel.py builds this image and runs kernel/build.sh board-in-container in it;
# the distribution's generic kernel headers provide the base config under config/board.config
# (Ubuntu: linux-headers-generic, Debian: linux-headers-amd64).
ARG BASE=ubuntu:22.04
FROM ${BASE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && headers=$(apt-cache show linux-headers-generic >/dev/null 2>&1 \
      && echo linux-headers-generic || echo linux-headers-amd64) \
 && apt-get install -y --no-install-recommends \
      bc bison build-essential ca-certificates cpio debhelper dpkg-dev dwarves fakeroot \
      flex kmod libelf-dev libssl-dev "$headers" python3 rsync xz-utils zstd \
 && rm -rf /var/lib/apt/lists/*
