# Build environment for the lab board's kernel packages (Ubuntu 22.04 userland).
# hil/build_kernel.py builds this image and runs kernel/build.sh board-in-container in it;
# linux-headers-generic provides Ubuntu's generic config, the base of config/board.config.
FROM ubuntu:22.04
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      bc bison build-essential ca-certificates cpio debhelper dpkg-dev dwarves fakeroot \
      flex kmod libelf-dev libssl-dev linux-headers-generic python3 rsync xz-utils zstd \
 && rm -rf /var/lib/apt/lists/*
