"""Building what runs on the targets: the twin's kernel, guest image and ROM, the lab
board's Dasharo firmware and kernel packages (in containers), and the versions they used.

The shell scripts under ``firmware/`` and ``kernel/`` own the recipes and the cache keys;
these modules start them, relay their progress and return the artifacts' paths.
"""
