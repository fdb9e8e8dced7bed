"""
The peer wire protocol's frames: pure parsing and encoding, no I/O.

A frame is one JSON object on one line, terminated by C{\\n} (a preceding
C{\\r} is tolerated), UTF-8, at most L{MAX_LINE_BYTES} bytes.  Every frame
has a string C{type}.  See C{docs/protocol.md} for the full specification
and an example of each frame.
"""

import json
from typing import Any, Callable, Dict, List, Optional, Tuple

from p2pchat.addresses import is_canonical_address
from p2pchat.log.entry import canonical_json, validate_name
from p2pchat.log.identity import is_node_id

# Version 2: paged, acknowledged summaries ("summary" pages with "after",
# "more"), and [contiguous, head] summary values.  Version 3: rooms (the
# room entries of p2pchat.log.rooms), never sent on a version-2 link.  A
# hello names the range the sender speaks: "version" the lowest,
# "max_version" the highest; see docs/protocol.md.
PROTOCOL_VERSION = 4
MIN_PROTOCOL_VERSION = 2
# Membership's failure-detection frames, new in version 3: a version 2 peer
# closes the link on a frame type it does not know, so they are never sent
# on a link that speaks less than PROBES_VERSION.
PROBE_FRAMES = frozenset({"probe", "probe-ack", "probe-req", "unlink"})
PROBES_VERSION = 3
MAX_LINE_BYTES = 65536
MAX_ADDRESS_LENGTH = 300
MAX_IDS_PER_FRAME = 500
MAX_AUTHORS_PER_PAGE = 500
MAX_SEQ = 2**53
#: Rows in one gossip frame; a 64 KiB line cannot hold more.
MAX_ROWS_PER_FRAME = 1000
MAX_DIGESTS_PER_FRAME = 100


class FrameError(ValueError):
    """
    A line is not a valid frame; C{str(error)} says why.
    """


def _reject_constant(name: str) -> None:
    raise FrameError(f"invalid JSON constant {name}")


# What json.loads(text, parse_constant=_reject_constant) builds on every
# call; one is enough, it keeps no state between documents.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _check_hello(frame: Dict[str, Any]) -> None:
    if not isinstance(frame.get("version"), int) or isinstance(frame.get("version"), bool):
        raise FrameError("hello.version is not an integer")
    highest = frame.get("max_version", frame["version"])
    if not isinstance(highest, int) or isinstance(highest, bool) or highest < frame["version"]:
        raise FrameError("hello.max_version is not an integer at least hello.version")
    if not is_node_id(frame.get("id")):
        raise FrameError("hello.id is not a node id")
    if not validate_name(frame.get("name")):
        raise FrameError("hello.name is not a valid name")
    links = frame.get("links", 0)
    if not isinstance(links, int) or isinstance(links, bool) or not 0 <= links <= 2**31:
        raise FrameError("hello.links is not a link count")
    if "addr" not in frame:
        raise FrameError("hello has no addr (use null for none)")
    if not valid_address(frame["addr"]):
        raise FrameError("hello.addr is not HOST:PORT or null")


def link_version(frame: Dict[str, Any]) -> Tuple[Optional[int], Optional[str]]:
    """
    @param frame: a hello frame (checked by L{parse_frame}): the
        sender speaks versions C{version} to C{max_version} (absent: only
        C{version}, as protocol 2 nodes say).
    @return: C{(version, None)}, the highest version both sides speak, or
        C{(None, why)} when there is none.
    """
    lowest = frame["version"]
    highest = min(frame.get("max_version", lowest), PROTOCOL_VERSION)
    if highest < max(lowest, MIN_PROTOCOL_VERSION):
        return None, (
            f"unsupported protocol version {lowest}"
            f" (this node speaks {MIN_PROTOCOL_VERSION} to {PROTOCOL_VERSION})"
        )
    return highest, None


def valid_address(address: object) -> bool:
    """
    @return: whether C{address} can be a node's advertised address, in a
        hello or in gossip: C{None} (no address), or exactly C{HOST:PORT}
        as L{p2pchat.addresses.parse_address} reads it (a DNS name, an IPv4
        address or a bracketed IPv6 address; a port 1-65535 without leading
        zeros), at most L{MAX_ADDRESS_LENGTH} characters.  Nothing else:
        an address with spaces could fake columns where it is shown.
    """
    if address is None:
        return True
    return (
        isinstance(address, str)
        and 0 < len(address) <= MAX_ADDRESS_LENGTH
        and is_canonical_address(address)
    )


def _check_entry(frame: Dict[str, Any]) -> None:
    if not isinstance(frame.get("entry"), dict):
        raise FrameError("entry.entry is not an object")
    if not isinstance(frame.get("sync", False), bool):
        raise FrameError("entry.sync is not a boolean")


def _check_error(frame: Dict[str, Any]) -> None:
    if not isinstance(frame.get("reason"), str):
        raise FrameError("error.reason is not a string")


def _check_nothing(frame: Dict[str, Any]) -> None:
    pass


def _is_seq(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_SEQ


def _check_summary(frame: Dict[str, Any]) -> None:
    after = frame.get("after", 0)
    if after is not None and not is_node_id(after):
        raise FrameError("summary.after is not a node id or null")
    if not isinstance(frame.get("final"), bool):
        raise FrameError("summary.final is not a boolean")
    vector = frame.get("vv")
    if not isinstance(vector, dict) or len(vector) > MAX_AUTHORS_PER_PAGE:
        raise FrameError(f"summary.vv is not an object of at most {MAX_AUTHORS_PER_PAGE} authors")
    if not vector and not frame["final"]:
        raise FrameError("summary.vv is empty on a page that is not final")
    previous = after or ""
    for author, value in vector.items():
        if not is_node_id(author):
            raise FrameError("summary.vv has a key that is not a node id")
        if author <= previous:
            raise FrameError("summary.vv keys are not ascending and after summary.after")
        previous = author
        # Exactly one form per claim: a plain seq when contiguous == head,
        # [contiguous, head] with contiguous < head otherwise.
        if _is_seq(value):
            continue
        if not (
            isinstance(value, list) and len(value) == 2
            and all(_is_seq(v) for v in value) and value[0] < value[1]
        ):
            raise FrameError(
                "summary.vv has a value that is neither a seq nor [contiguous, head]"
                " with contiguous < head"
            )


def _check_ids(frame: Dict[str, Any]) -> None:
    ids = frame.get("ids")
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_IDS_PER_FRAME:
        raise FrameError(f"{frame['type']}.ids is not a list of 1-{MAX_IDS_PER_FRAME} ids")
    if not all(is_node_id(i) for i in ids):
        raise FrameError(f"{frame['type']}.ids holds something that is not an entry id")
    if not isinstance(frame.get("sync", False), bool):
        raise FrameError(f"{frame['type']}.sync is not a boolean")


def check_gossip(frame: Dict[str, Any]) -> None:
    """
    Check a C{gossip} frame's envelope: C{rows} is a list of at most
    L{MAX_ROWS_PER_FRAME} rows.  Each row's form and signature are
    checked by membership (L{p2pchat.mesh.membership.rows.check_row}),
    which knows the rows it already holds.
    """
    rows = frame.get("rows")
    if not isinstance(rows, list):
        raise FrameError("gossip.rows is not a list")
    if len(rows) > MAX_ROWS_PER_FRAME:
        raise FrameError(f"gossip frame has more than {MAX_ROWS_PER_FRAME} rows")


def _check_probe(frame: Dict[str, Any]) -> None:
    """
    C{probe}, C{probe-ack} and C{probe-req}: C{seq} is an integer in
    0..2**53 and C{target}, required in a C{probe-req} and optional in a
    C{probe-ack}, is a node id.
    """
    kind = frame["type"]
    if not _is_seq(frame.get("seq")):
        raise FrameError(f"{kind}.seq is not an integer in 0..2**53")
    wants_target = kind == "probe-req" or (kind == "probe-ack" and "target" in frame)
    if wants_target and not is_node_id(frame.get("target")):
        raise FrameError(f"{kind}.target is not a node id")


def _check_digests(frame: Dict[str, Any]) -> None:
    records = frame.get("records")
    if not isinstance(records, list) or not 0 < len(records) <= MAX_DIGESTS_PER_FRAME:
        raise FrameError(f"digests.records is not a list of 1-{MAX_DIGESTS_PER_FRAME} records")


FRAME_CHECKS: Dict[str, Callable[[Dict[str, Any]], None]] = {
    "hello": _check_hello,
    "entry": _check_entry,
    "error": _check_error,
    "ping": _check_nothing,
    "pong": _check_nothing,
    "bye": _check_nothing,
    # Replication frames (handled by p2pchat.log.replication.Replicator).
    "summary": _check_summary,
    "more": _check_nothing,
    "ihave": _check_ids,
    "graft": _check_ids,
    "prune": _check_nothing,
    # Membership gossip; its rows are checked by p2pchat.mesh.membership.
    "gossip": check_gossip,
    # Membership probes (SWIM's ping, ack and ping-req through links).
    "probe": _check_probe,
    "probe-ack": _check_probe,
    "probe-req": _check_probe,
    # "I am closing this link on purpose (I have too many)": do not suspect me.
    "unlink": _check_nothing,
    "digests": _check_digests,  # protocol 4: records p2pchat.mesh.convergence checks
}


def parse_frame(line: bytes) -> Dict[str, Any]:
    """
    Parse and validate one line received from a peer.

    Only the frame's envelope is checked here (its type and the types of
    its fields); an entry inside an C{entry} frame is verified separately
    by L{p2pchat.log.entry.decode_entry}.

    @param line: one line without its delimiter.
    @return: the frame as a dict with a known C{type}.
    @raise FrameError: naming the problem (not UTF-8, not JSON, not an
        object, unknown type, wrong field types).
    """
    if len(line) > MAX_LINE_BYTES:
        raise FrameError(f"line longer than {MAX_LINE_BYTES} bytes")
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError("line is not valid UTF-8") from None
    try:
        frame = _DECODER.decode(text)
    except FrameError:
        raise
    except (ValueError, RecursionError):
        raise FrameError("line is not valid JSON") from None
    if not isinstance(frame, dict):
        raise FrameError("frame is not a JSON object")
    frame_type = frame.get("type")
    if not isinstance(frame_type, str):
        raise FrameError("frame has no string type")
    check = FRAME_CHECKS.get(frame_type)
    if check is None:
        raise FrameError(f"unknown frame type {frame_type[:40]!r}")
    check(frame)
    return frame


def encode_frame(frame: Dict[str, Any]) -> bytes:
    """
    @return: C{frame} as one line (canonical JSON), without the delimiter.
    """
    return canonical_json(frame)


def hello(
    node_id: str, name: str, address: Optional[str], links: Optional[int] = None
) -> Dict[str, Any]:
    """
    @param links: how many links the sender has open (optional): a full
        node refuses a new link from a node that already has some, and
        always takes one from a node that has none (a joiner).
    @return: a C{hello} frame announcing this node.
    """
    frame = {
        "type": "hello",
        "version": MIN_PROTOCOL_VERSION,
        "max_version": PROTOCOL_VERSION,
        "id": node_id,
        "name": name,
        "addr": address,
    }
    if links is not None:
        frame["links"] = links
    return frame


# Membership frames


def gossip(rows: list) -> Dict[str, Any]:
    """
    @param rows: at most L{MAX_ROWS_PER_FRAME} member rows (see
        L{p2pchat.mesh.membership.rows}), whose encoding fits in one line.
    @return: a C{gossip} frame carrying them.
    """
    return {"type": "gossip", "rows": rows}


def probe(seq: int) -> Dict[str, Any]:
    """
    @return: a C{probe} frame: "answer C{seq} with a C{probe-ack}".
    """
    return {"type": "probe", "seq": seq}


def probe_ack(seq: int, target: Optional[str] = None) -> Dict[str, Any]:
    """
    @param target: for the answer to a C{probe-req}: the member that
        answered the probe made on the requester's behalf.
    @return: a C{probe-ack} frame answering the probe (or probe-req)
        C{seq}.
    """
    if target is None:
        return {"type": "probe-ack", "seq": seq}
    return {"type": "probe-ack", "seq": seq, "target": target}


def unlink() -> Dict[str, Any]:
    """
    @return: an C{unlink} frame: the sender closes this link on purpose
        next (it has more links than it keeps), so its loss is no sign
        of failure.
    """
    return {"type": "unlink"}


def probe_req(seq: int, target: str) -> Dict[str, Any]:
    """
    @return: a C{probe-req} frame: "probe C{target} for me, and send me a
        C{probe-ack} with C{seq} if it answers".
    """
    return {"type": "probe-req", "seq": seq, "target": target}


def entry_frame(wire_entry: Dict[str, Any], sync: bool = False) -> Dict[str, Any]:
    """
    @return: an C{entry} frame carrying one signed entry; C{sync} marks
        one sent to catch a peer up (anti-entropy or graft) rather than
        pushed live, so a copy the peer already holds is not taken as a
        sign of a redundant live link.
    """
    if sync:
        return {"type": "entry", "entry": wire_entry, "sync": True}
    return {"type": "entry", "entry": wire_entry}


def error(reason: str) -> Dict[str, Any]:
    """
    @return: an C{error} frame; the sender closes the link after it.
    """
    return {"type": "error", "reason": reason}


def summary_page(after: Optional[str], vv: Dict[str, Any], final: bool) -> Dict[str, Any]:
    """
    @param after: the last author of the previous page of this round, or
        C{None} for the first page.
    @param vv: at most L{MAX_AUTHORS_PER_PAGE} authors, all greater than
        C{after}, each mapped to its contiguous seq, or to C{[contiguous,
        head]} when the feed has a hole (contiguous < head).
    @param final: whether this is the round's last page.
    @return: one page of a summary round; the receiver answers it with
        the entries the sender lacks in the page's author range, then
        C{more}.
    """
    return {"type": "summary", "after": after, "vv": vv, "final": final}


# Builders of the link-level and replication frames.  Each builds what
# FRAME_CHECKS accepts (tests/unit/test_wire.py parses every builder's
# output), so the shape of a frame is written once, here.


def digests(records: List[dict]) -> Dict[str, Any]:
    return {"type": "digests", "records": records}


def ping() -> Dict[str, Any]:
    """
    @return: a C{ping} frame (a keep-alive; the peer answers C{pong}).
    """
    return {"type": "ping"}


def pong() -> Dict[str, Any]:
    """
    @return: a C{pong} frame, the answer to a C{ping}.
    """
    return {"type": "pong"}


def bye() -> Dict[str, Any]:
    """
    @return: a C{bye} frame; the sender closes the link after it.
    """
    return {"type": "bye"}


def more() -> Dict[str, Any]:
    """
    @return: a C{more} frame: the last summary page is answered, send the
        next one.
    """
    return {"type": "more"}


def prune() -> Dict[str, Any]:
    """
    @return: a C{prune} frame: stop pushing entries on this link, announce
        them instead.
    """
    return {"type": "prune"}


def _id_list(frame_type: str, ids: List[str]) -> List[str]:
    if not 0 < len(ids) <= MAX_IDS_PER_FRAME:
        raise ValueError(f"{frame_type} carries 1-{MAX_IDS_PER_FRAME} ids, not {len(ids)}")
    return ids


def ihave(ids: List[str], sync: bool = False) -> Dict[str, Any]:
    """
    @param ids: 1 to L{MAX_IDS_PER_FRAME} entry ids this node holds.
    @param sync: the entries arrived to catch this node up (a receiver
        that lacks one pulls with a summary round instead of grafting).
    @return: an C{ihave} frame announcing them.
    @raise ValueError: if C{ids} is empty or too long.
    """
    frame = {"type": "ihave", "ids": _id_list("ihave", ids)}
    if sync:
        frame["sync"] = True
    return frame


def graft(ids: List[str]) -> Dict[str, Any]:
    """
    @param ids: 1 to L{MAX_IDS_PER_FRAME} entry ids this node lacks.
    @return: a C{graft} frame asking for them (the link becomes eager).
    @raise ValueError: if C{ids} is empty or too long.
    """
    return {"type": "graft", "ids": _id_list("graft", ids)}
