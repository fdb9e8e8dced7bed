# -*- test-case-name: tests.unit.test_membership_scale -*-
"""
Work the nodes of a L{p2pchat.testing.simulation.Simulation} share, since
they run in one process: checking a row's signature (each distinct
statement once) and measuring a frame's encoded size (each distinct row
once), so a simulation of thousands of nodes spends its time on the
protocol, not on Ed25519 and JSON.
"""

from typing import Dict

from p2pchat.mesh import wire
from p2pchat.mesh.membership.rows import verify_row

#: A gossip frame's envelope around its rows, and its newline.
GOSSIP_ENVELOPE_BYTES = len(b'{"rows":[],"type":"gossip"}') + 1


class SharedWork:
    """
    Remembered signature checks and row sizes.
    """

    def __init__(self):
        self._verified: Dict[tuple, bool] = {}
        self._row_bytes: Dict[tuple, int] = {}

    def verify(self, row: dict) -> bool:
        """
        L{verify_row}, remembering its answer per signed statement.
        """
        key = (row["id"], row["inc"], row["name"], row["addr"], row["state"] == "left", row["sig"])
        answer = self._verified.get(key)
        if answer is None:
            answer = self._verified[key] = verify_row(row)
        return answer

    def size(self, frame: dict) -> int:
        """
        @return: the encoded size of C{frame} with its newline, as
            L{wire.encode_frame} makes it.
        """
        rows = frame.get("rows")
        if rows is None:
            return len(wire.encode_frame(frame)) + 1
        total = GOSSIP_ENVELOPE_BYTES + max(0, len(rows) - 1)
        sizes = self._row_bytes
        for row in rows:
            key = (row["id"], row["inc"], row["state"], row["hb"], row.get("sig"))
            size = sizes.get(key)
            if size is None:
                size = sizes[key] = len(wire.encode_frame(row))
            total += size
        return total
