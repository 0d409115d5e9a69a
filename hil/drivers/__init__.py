"""One module per part of a board (kvmd/PiKVM, power, plug, serial console, SSH shell, command
runner, flashrom, IFD, cbmem, file transfer). Each depends only on hil.core.
"""
