"""pytest plugin (entry point ``hil``): ``--target``, ``--inventory`` and the board fixtures."""
