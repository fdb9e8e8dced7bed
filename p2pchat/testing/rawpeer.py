"""
A raw hostile peer: a plain TCP socket that speaks (or abuses) the peer
protocol by hand, against a real node's peer port.

This is the one raw client: the process tests (L{tests.malicious},
C{tests/integration/test_attack_*_processes.py}) drive a L{RawPeer}
line by line with blocking reads, and the bench's C{attacks} scenario
(L{p2pchat.bench.hostile}) turns its socket non-blocking and floods it
with L{push}, L{drain} and L{read_until}.  It lives in the package, not in
C{tests/}, because the bench runs from an installed package.

Every wait has a deadline; nothing here asserts how fast a node is.
"""

import json
import select
import socket
import time
from typing import List, Optional

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.mesh import wire

# How long a blocking read or connect waits before giving up.
DEADLINE_S = 30.0


def frame_line(frame: dict) -> bytes:
    """
    @return: C{frame} as one protocol line.
    """
    return wire.encode_frame(frame) + b"\n"


def connect(address: str, timeout: float = DEADLINE_S) -> socket.socket:
    """
    @return: a plain TCP connection to C{address} (C{host:port}) that has
        said nothing yet.
    """
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


class RawPeer:
    """
    A hand-driven peer: connects, reads the listener's hello, answers with
    a hello of its own, and then writes whatever it is told to.

    @ivar identity: the key its hello claims.
    @ivar socket: the linked socket (blocking, with the deadline as
        timeout, until its user says otherwise).
    @ivar buffer: bytes read but not yet returned by L{read_line}.
    """

    def __init__(self, address: str, name: str = "raw", timeout: float = DEADLINE_S):
        self.identity = Identity.generate()
        self.socket = connect(address, timeout)
        self.buffer = b""
        line = self.read_line()
        if not line:
            self.socket.close()
            raise ConnectionError("node closed before its hello")
        hello = json.loads(line)
        if not isinstance(hello, dict) or hello.get("type") != "hello":
            self.socket.close()
            raise ConnectionError(f"the node's first frame was not a hello: {hello!r}")
        self.send(wire.hello(self.identity.node_id, name, None))

    def read_line(self) -> bytes:
        """
        @return: the next line the node sent, or C{b""} once it closed.
        """
        while b"\n" not in self.buffer:
            data = self.socket.recv(65536)
            if not data:
                return b""
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line

    def frames_until_closed(self) -> List[dict]:
        """
        @return: every frame the node sent until it closed the link.
        """
        frames = []
        while True:
            line = self.read_line()
            if not line:
                return frames
            frames.append(json.loads(line))

    def send(self, frame: dict) -> None:
        """
        Write C{frame} as one line.
        """
        self.socket.sendall(frame_line(frame))

    def close(self) -> None:
        """
        Close the link.
        """
        self.socket.close()


def push(sock: socket.socket, data: bytes, until: float) -> int:
    """
    Write as much of C{data} as the non-blocking C{sock} takes before the
    monotonic time C{until}, without reading.

    @return: bytes written (fewer than C{len(data)} when the node stopped
        reading, or closed the link).
    """
    sent = 0
    while sent < len(data) and time.monotonic() < until:
        select.select([], [sock], [], min(0.05, max(0.0, until - time.monotonic())))
        try:
            sent += sock.send(data[sent:sent + 65536])
        except BlockingIOError:
            continue
        except OSError:
            break
    return sent


def drain(sock: socket.socket, wait_s: float = 0.0) -> Optional[bytes]:
    """
    Read what the node sent on the non-blocking C{sock}, waiting at most
    C{wait_s} for the first byte.

    @return: the bytes read (possibly none), or C{None} once the node
        closed the link.
    """
    ready, _, _ = select.select([sock], [], [], wait_s)
    if not ready:
        return b""
    chunks = []
    while True:
        try:
            data = sock.recv(1 << 20)
        except BlockingIOError:
            return b"".join(chunks)
        except OSError:
            return None
        if not data:
            return None
        chunks.append(data)


def read_until(sock: socket.socket, marker: bytes, until: float) -> bool:
    """
    Read the non-blocking C{sock} until C{marker} arrives, the node closes,
    or the monotonic time C{until} passes.

    @return: whether the link is still open.
    """
    tail = b""
    while time.monotonic() < until:
        data = drain(sock, min(0.2, max(0.0, until - time.monotonic())))
        if data is None:
            return False
        tail = tail[-len(marker):] + data
        if marker in tail:
            return True
    return True


def one_entry_authors(count: int, tag: str = "sybil") -> bytes:
    """
    @return: C{count} entry lines, each the first (seq 1) entry of a new
        author.
    """
    lines = []
    for number in range(count):
        entry = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                             {"name": tag, "text": f"{tag} {number}"})
        lines.append(frame_line(wire.entry_frame(entry.to_wire())))
    return b"".join(lines)
