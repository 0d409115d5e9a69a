"""The kvmd-compatible HTTP API that the twin (and the simulated test board) serves.

``server`` (routes, auth, kvmd's error JSON, the ``wait`` flag, chunked MSD uploads, fault
hooks for tests) on Python's ``http.server``; ``atx`` (kvmd's two button regions); ``msd``
(kvmd's MSD rules over image files); ``simulated`` (an in-memory board, a test double the
twin never imports).

Why no server library (measured 2026-12-02, this machine, Python 3.11, one loopback
client, 300 keep-alive ``GET /api/atx`` with auth headers; the libraries ran a minimal
handler, ours the full server):

==========================  ============  ==========  ==========
                            this server   aiohttp     werkzeug
==========================  ============  ==========  ==========
median / p95 latency        0.94/1.04 ms  0.98/1.08   2.08/4.58
start, import included      37 ms         162 ms      30 ms
import alone                0.15 s        0.25 s      0.09 s
peak RSS                    33 MiB        43 MiB      33 MiB
dependencies added          none          8 packages  2 packages
                                          12.2 MiB    2.1 MiB
==========================  ============  ==========  ==========

The measurement first found a defect of ours, not a reason to switch: 44 ms per request,
Nagle holding the body for the client's delayed ACK, now fixed (TCP_NODELAY). A library
would replace the HTTP plumbing only (the chunked-body reader and the request handler,
about 180 of the server's lines); kvmd's semantics (routes, parameters, error names, busy
rules, MSD states) stay ours either way, and they are what the twin must get right.
aiohttp would also turn the threaded backends (QEMU, QMP and flashrom calls that block)
into executor calls, and the fault hooks (a connection dropped after the operation ran)
into transport-level code. werkzeug's server is itself built on ``http.server``. Not
measured: the full suite against a complete library port (none was written).
"""
