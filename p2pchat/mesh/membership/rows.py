# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
"""
Membership rows: their form, and the signature by which a member vouches
for its own row.

A row is C{{"id", "inc", "state", "hb", "name", "addr", "sig"}}.  C{sig}
is the member's Ed25519 signature over L{row_statement}: a
domain-separated, canonical statement of C{(id, inc, name, addr, base)},
where C{base} is C{left} for a C{left} row and C{alive} for every other
state.  So:

  - only the member can raise its incarnation, change its name or
    address, or say it left (every one of those changes the statement);
  - C{suspect} and C{dead} are claims of others: they stay unsigned but
    carry the member's own C{alive} signature for that incarnation, so
    they can only refer to an incarnation the member really had;
  - the heartbeat is not signed (it changes every second; signing it
    would cost one signature and one verification per row per second).

Cost: one verification takes about 62 microseconds on the 2-core test
machine (PyNaCl, measured with C{timeit}, 2,000 runs, under load), so a
frame of L{MAX_ROWS_PER_FRAME} rows that all need checking costs about
62 ms of reactor time; L{p2pchat.mesh.membership.admission} budgets them per link.
"""

import json
from typing import Callable, Dict, Optional, Tuple

from p2pchat.log.entry import validate_name
from p2pchat.log.identity import HEX_DIGITS, is_node_id, short_id, verify_signature
from p2pchat.mesh.wire import (  # noqa: F401 (MAX_ROWS_PER_FRAME re-exported)
    MAX_ROWS_PER_FRAME,
    FrameError,
    valid_address,
)
from p2pchat.safe import printable

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
LEFT = "left"
STATES = (ALIVE, SUSPECT, DEAD, LEFT)
#: For equal incarnations, the state with the higher rank wins.
STATE_RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2, LEFT: 3}

MAX_INCARNATION = 2**53
MAX_HEARTBEAT = 2**53
SIGNATURE_HEX_LENGTH = 128
#: Domain separation: no other signed object of the protocol starts so.
ROW_CONTEXT = b"p2pchat-member-row-v2\n"

#: What a signature vouches for: C{(inc, name, addr, base, sig)}.
SignedPart = Tuple[int, str, Optional[str], str, str]


def make_row(
    node_id: str,
    incarnation: int,
    state: str,
    heartbeat: int,
    name: str,
    address: Optional[str],
    sig: Optional[str],
) -> dict:
    """
    @return: a gossip row (without C{sig} when it is C{None}: a member
        known only from a hello has none, and such rows are never sent).
    """
    row = {
        "id": node_id,
        "inc": incarnation,
        "state": state,
        "hb": heartbeat,
        "name": name,
        "addr": address,
    }
    if sig is not None:
        row["sig"] = sig
    return row


def base_state(state: str) -> str:
    """
    @return: the state a row's signature covers: C{left} for C{left},
        C{alive} for C{alive}, C{suspect} and C{dead}.
    """
    return LEFT if state == LEFT else ALIVE


def row_statement(
    node_id: str, incarnation: int, name: str, address: Optional[str], base: str
) -> bytes:
    """
    @return: the bytes a member signs for its row: L{ROW_CONTEXT} then the
        JSON array C{[id, inc, name, addr, base]} with no spaces and every
        non-ASCII character escaped (one encoding for one statement).
    """
    body = json.dumps(
        [node_id, incarnation, name, address, base], ensure_ascii=True, separators=(",", ":")
    )
    return ROW_CONTEXT + body.encode("ascii")


def sign_row(
    signer: Callable[[bytes], bytes],
    node_id: str,
    incarnation: int,
    name: str,
    address: Optional[str],
    base: str,
) -> str:
    """
    @return: the hex signature of L{row_statement} made with C{signer}.
    """
    return signer(row_statement(node_id, incarnation, name, address, base)).hex()


def signed_part(row: dict) -> SignedPart:
    """
    @return: the part of a (well-formed) row its signature vouches for.
    """
    return (row["inc"], row["name"], row["addr"], base_state(row["state"]), row["sig"])


def verify_row(row: dict) -> bool:
    """
    @return: whether a well-formed row's C{sig} is its member's signature.
    """
    statement = row_statement(
        row["id"], row["inc"], row["name"], row["addr"], base_state(row["state"])
    )
    return verify_signature(row["id"], statement, bytes.fromhex(row["sig"]))


def newer_key(key: Tuple[int, int, int], known: Optional[Tuple[int, int, int]]) -> bool:
    """
    @return: whether a row with C{key} tells a peer that knows C{known}
        something new.
    """
    if known is None or key[0] > known[0]:
        return True
    return key[0] == known[0] and (key[1] > known[1] or key[2] > known[2])


def join_keys(
    key: Tuple[int, int, int], known: Optional[Tuple[int, int, int]]
) -> Tuple[int, int, int]:
    """
    @return: the join of two C{(incarnation, rank, heartbeat)} keys.
    """
    if known is None or key[0] > known[0]:
        return key
    if key[0] < known[0]:
        return known
    return (key[0], max(key[1], known[1]), max(key[2], known[2]))


def _is_int(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def check_row(row: object, known: Dict[str, object]) -> None:
    """
    Check the form of one gossip row (not its signature).  The id, name,
    address and signature of a row that match a known member's were
    checked when it was learned.

    @param known: the members known, by id (objects with C{name},
        C{address} and C{sig}).
    @raise FrameError: naming the problem (escaped).
    """
    if type(row) is not dict:
        raise FrameError("gossip row is not an object")
    node_id = row.get("id")
    if type(node_id) is not str:
        raise FrameError("gossip row id is not a node id")
    record = known.get(node_id)
    if (
        record is None
        or record.name != row.get("name")  # type: ignore[attr-defined]
        or record.address != row.get("addr")  # type: ignore[attr-defined]
    ):
        if not is_node_id(node_id):
            raise FrameError("gossip row id is not a node id")
        if not validate_name(row.get("name")):
            raise FrameError(f"gossip row for {short_id(node_id)}: name is not a valid name")
        if "addr" not in row or not valid_address(row["addr"]):
            raise FrameError(
                f"gossip row for {short_id(node_id)}: addr is not HOST:PORT or null"
            )
    if not _is_int(row.get("inc"), MAX_INCARNATION):
        raise FrameError(
            f"gossip row for {short_id(node_id)}: inc is not an integer in 0..2**53"
        )
    state = row.get("state")
    if type(state) is not str or state not in STATE_RANK:
        raise FrameError(
            f"gossip row for {short_id(node_id)}: impossible state "
            f"{printable(str(state), 20)!r}"
        )
    if not _is_int(row.get("hb"), MAX_HEARTBEAT):
        raise FrameError(f"gossip row for {short_id(node_id)}: hb is not an integer in 0..2**53")
    sig = row.get("sig")
    if record is not None and sig == record.sig:  # type: ignore[attr-defined]
        return
    if not (type(sig) is str and len(sig) == SIGNATURE_HEX_LENGTH and not sig.strip(HEX_DIGITS)):
        raise FrameError(
            f"gossip row for {short_id(node_id)}: sig is not 128 lowercase hex digits"
        )
