"""The kvmd-compatible HTTP API that the twin (and the simulated test board) serves."""
