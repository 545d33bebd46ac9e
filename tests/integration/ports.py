"""Free ports on 127.0.0.1 for integration tests.

A port handed to a peer (a SIPp phone's SIP or media port, a PBX's SIP port) is bound by
that peer a little later, in its own process. Ports the kernel hands out by itself
(bind to port 0, the source port of a connect) come from the ephemeral range, 32768-60999
on Linux, and a process starting meanwhile (another SIPp) could be given exactly the port
that was promised; SIPp then fails with "Unable to bind main socket". So the ports
handed out here come from PEER_PORTS, below the ephemeral range, where only the tests
themselves bind, and a cursor moves on with every call so two callers never get the
same port before either has bound it.
"""

from __future__ import annotations

import itertools
import os
import socket

PEER_PORTS = range(29000, 32768)
"""Below the kernel's ephemeral ports, above the UA harness's RTP ranges (21000-28999) and
the PBX's default RTP ports (10000-20000)."""
RTP_AREA = range(40000, 60000)
"""Where pbx_harness.rtp_block hands the PBXs under test their RTP ports."""

_cursor = itertools.count(os.getpid() * 7 % len(PEER_PORTS))


def free_port(step: int = 1) -> int:
    """A port free for both UDP and TCP; with step=2 the next port is free too.

    baresip binds its SIP port and the port after it, hence `step`.
    """
    for _ in range(len(PEER_PORTS)):
        port = PEER_PORTS.start + next(_cursor) % len(PEER_PORTS)
        if port + step - 1 not in PEER_PORTS:
            continue
        if all(_free(p) for p in range(port, port + step)):
            for _ in range(step - 1):
                next(_cursor)  # the ports after it are promised too
            return port
    raise RuntimeError("no free port on 127.0.0.1")


def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
