"""wpp-hil: build, flash and test Whole Process Persistence on the lab board and its twin."""

__version__ = "0.1.0"
