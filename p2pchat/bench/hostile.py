"""
A hostile peer for the C{attacks} scenario: raw sockets that speak (or
abuse) the peer protocol, and the payloads they send.

The raw client itself is L{p2pchat.testing.rawpeer} (the process tests'
too): this module links its L{RawPeer}s non-blocking and adds what only
the bench needs.  Nothing here waits longer than the deadline it is given.
"""

import os
import shutil
import socket
from typing import List, Optional

from p2pchat.bench.corpus import STORE_FILE_NAME
from p2pchat.bench.processes import DEADLINE_S
from p2pchat.log.entry import Entry, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import Store
from p2pchat.mesh.membership.rows import ALIVE, base_state, sign_row
from p2pchat.testing.rawpeer import (
    RawPeer,
    connect,
    drain,
    frame_line,
    one_entry_authors,
    push,
    read_until,
)

# The raw client's helpers, used by the attacks as hostile.<name>.
__all__ = [
    "build_attack_store", "close_all", "connect", "copy_store", "drain", "fds", "frame_line",
    "link", "one_entry_authors", "push", "read_until", "stranger_rows",
]

# Gossip rows per frame: keeps a line well under wire.MAX_LINE_BYTES.
ROWS_PER_FRAME = 150
BIG_TEXT_CHARS = 4000


def fds(pid: int) -> Optional[int]:
    """
    @return: how many file descriptors process C{pid} has open, or
        C{None} where there is no C{/proc}.
    """
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


def link(address: str, name: str) -> socket.socket:
    """
    Link a L{RawPeer} called C{name}, under a fresh identity, to a node's
    peer port.

    @return: its socket, non-blocking.
    """
    sock = RawPeer(address, name, timeout=DEADLINE_S).socket
    sock.setblocking(False)
    return sock


def close_all(sockets: List[socket.socket]) -> None:
    """
    Close every socket in C{sockets} and forget them.
    """
    for sock in sockets:
        sock.close()
    sockets.clear()


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
