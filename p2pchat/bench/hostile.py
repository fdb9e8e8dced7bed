"""
A hostile peer for the C{attacks} scenario: raw sockets that speak (or
abuse) the peer protocol, and the payloads they send.

The bench must run from an installed package, so this is its own small
raw client, not C{tests/malicious.py}.  Every socket is non-blocking
once linked; nothing here waits longer than the deadline it is given.
"""

import json
import os
import select
import shutil
import socket
import time
from typing import List, Optional

from p2pchat.bench.corpus import STORE_FILE_NAME
from p2pchat.bench.processes import DEADLINE_S
from p2pchat.log.entry import Entry, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import Store
from p2pchat.mesh import wire
from p2pchat.mesh.membership.rows import ALIVE, base_state, sign_row

# Gossip rows per frame: keeps a line well under wire.MAX_LINE_BYTES.
ROWS_PER_FRAME = 150
BIG_TEXT_CHARS = 4000


def frame_line(frame: dict) -> bytes:
    """
    @return: C{frame} as one protocol line.
    """
    return wire.encode_frame(frame) + b"\n"


def fds(pid: int) -> Optional[int]:
    """
    @return: how many file descriptors process C{pid} has open, or
        C{None} where there is no C{/proc}.
    """
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def connect(address: str) -> socket.socket:
    """
    @return: a plain TCP connection to C{address} (C{host:port}).
    """
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=DEADLINE_S)


def link(address: str, name: str) -> socket.socket:
    """
    Connect to a node's peer port, read its hello, answer with one under a
    fresh identity.

    @return: the linked socket, non-blocking.
    """
    sock = connect(address)
    buffer = b""
    while b"\n" not in buffer:
        data = sock.recv(65536)
        if not data:
            sock.close()
            raise ConnectionError("node closed before its hello")
        buffer += data
    if json.loads(buffer.split(b"\n", 1)[0]).get("type") != "hello":
        sock.close()
        raise ConnectionError("the node's first frame was not a hello")
    sock.sendall(frame_line(wire.hello(Identity.generate().node_id, name, None)))
    sock.setblocking(False)
    return sock


def push(sock: socket.socket, data: bytes, until: float) -> int:
    """
    Write as much of C{data} as the socket takes before the monotonic time
    C{until}, without reading.

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
    Read what the node sent, waiting at most C{wait_s} for the first byte.

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
    Read until C{marker} arrives, the node closes, or C{until} passes.

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


def close_all(sockets: List[socket.socket]) -> None:
    """
    Close every socket in C{sockets} and forget them.
    """
    for sock in sockets:
        sock.close()
    sockets.clear()


def one_entry_authors(count: int, tag: str = "sybil") -> bytes:
    """
    @return: C{count} entry lines, each the first entry of a new author.
    """
    lines = []
    for number in range(count):
        entry = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                             {"name": tag, "text": f"{tag} {number}"})
        lines.append(frame_line(wire.entry_frame(entry.to_wire())))
    return b"".join(lines)


def stranger_rows(count: int) -> bytes:
    """
    @return: gossip frames (C{ROWS_PER_FRAME} rows each) announcing
        C{count} members under fresh keys, each row signed by its member.
    """
    rows = []
    for _ in range(count):
        member = Identity.generate()
        signature = sign_row(member.sign, member.node_id, 1, "fake", None,
                             base_state(ALIVE))
        rows.append({"id": member.node_id, "inc": 1, "state": ALIVE, "hb": 0,
                     "name": "fake", "addr": None, "sig": signature})
    return b"".join(
        frame_line({"type": "gossip", "rows": rows[at:at + ROWS_PER_FRAME]})
        for at in range(0, len(rows), ROWS_PER_FRAME)
    )


def build_attack_store(data_dir: str, authors: int) -> Entry:
    """
    Fill a store with C{authors} one-entry authors (what made an empty
    summary expensive) and one large entry (what a graft amplified).

    @return: the large entry.
    """
    os.makedirs(data_dir, exist_ok=True)
    store = Store(os.path.join(data_dir, STORE_FILE_NAME))
    store.open()
    try:
        big = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                           {"name": "big", "text": "y" * BIG_TEXT_CHARS})
        batch = [big]
        for number in range(authors):
            batch.append(create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                                      {"name": "author", "text": f"hello {number}"}))
            if len(batch) == 1000:
                store.add_entries(batch)
                batch = []
        if batch:
            store.add_entries(batch)
    finally:
        store.close()
    return big


def copy_store(source_dir: str, data_dir: str) -> None:
    """
    Give a fresh node data directory a copy of the store in C{source_dir}.
    """
    os.makedirs(data_dir, exist_ok=True)
    shutil.copyfile(os.path.join(source_dir, STORE_FILE_NAME),
                    os.path.join(data_dir, STORE_FILE_NAME))
