"""Free ports on 127.0.0.1 for integration tests."""

from __future__ import annotations

import socket

RTP_AREA = range(40000, 60000)
"""Where pbx_harness.rtp_block hands the PBXs under test their RTP ports. A port given
to a peer (a SIPp phone's SIP or media port) stays out of it: a PBX binding RTP ports for
a call must not take one a peer was promised but has not bound yet."""


def free_port(step: int = 1) -> int:
    """A port free for both UDP and TCP; with step=2 the next port is free too.

    baresip binds its SIP port and the port after it, hence `step`.
    """
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port = udp.getsockname()[1]
        if port + step > 65535 or port in RTP_AREA or port + step - 1 in RTP_AREA:
            continue
        if all(_free(p) for p in range(port, port + step)):
            return port
    raise RuntimeError("no free port pair on 127.0.0.1")


def _free(port: int) -> bool:
    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
        with socket.socket(socket.AF_INET, kind) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True
