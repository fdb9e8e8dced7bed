"""
Log entries: their canonical encoding, signing and verification.

An entry is one signed record in an author's hash-chained feed.  Its wire
form is a JSON object with exactly these keys::

    author   64 hex digits: the author's node id (Ed25519 public key)
    seq      the author's sequence number, 1, 2, 3 ...
    prev     the id of the author's entry seq-1, or null when seq is 1
    lamport  Lamport time: greater than every entry the author had seen
    ts       the author's wall-clock time, integer milliseconds since 1970
    kind     "chat" or "dm"
    body     an object whose shape depends on kind (see L{validate_body})
    sig      128 hex digits: Ed25519 signature by author

The I{canonical encoding} of a JSON value is C{json.dumps(value,
sort_keys=True, separators=(",", ":"), ensure_ascii=False)} encoded as
UTF-8.  The signature covers C{SIGNING_CONTEXT} followed by the canonical
encoding of the entry without C{sig}; the entry id is the SHA-256 (hex) of
the canonical encoding of the whole entry including C{sig}.  The id is
never sent: every receiver computes it.
"""

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Dict, Optional

from p2pchat.identity import Identity, is_node_id, verify_signature

SIGNING_CONTEXT = b"p2pchat-entry-v1\n"
MAX_TEXT_BYTES = 4096
MAX_BODY_BYTES = 16384
MAX_INTEGER = 2**53
KINDS = ("chat", "dm")
ENTRY_KEYS = frozenset(
    ["author", "seq", "prev", "lamport", "ts", "kind", "body", "sig"]
)


class InvalidEntry(ValueError):
    """
    An entry failed validation; C{str(error)} says why, in a few words.
    """


def canonical_json(value: Any) -> bytes:
    """
    @return: the canonical encoding of C{value}.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")


@dataclass(frozen=True)
class Entry:
    """
    A verified log entry.

    Build one with L{create_entry} (to author) or L{decode_entry} (to
    receive); both guarantee that the signature is valid.
    """

    author: str
    seq: int
    prev: Optional[str]
    lamport: int
    ts: int
    kind: str
    body: Dict[str, Any]
    sig: str
    id: str

    def to_wire(self) -> Dict[str, Any]:
        """
        @return: the JSON object that represents this entry on the wire.
        """
        return {
            "author": self.author,
            "seq": self.seq,
            "prev": self.prev,
            "lamport": self.lamport,
            "ts": self.ts,
            "kind": self.kind,
            "body": self.body,
            "sig": self.sig,
        }

    @property
    def name(self) -> str:
        """
        The display name the author used when posting this entry.
        """
        return self.body["name"]


def _unsigned(obj: Dict[str, Any]) -> Dict[str, Any]:
    return {key: value for key, value in obj.items() if key != "sig"}


def entry_id(wire: Dict[str, Any]) -> str:
    """
    @return: the id of the signed entry C{wire}: SHA-256 of its canonical
        encoding.
    """
    return hashlib.sha256(canonical_json(wire)).hexdigest()


def _is_int(value: object, minimum: int) -> bool:
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and minimum <= value <= MAX_INTEGER
    )


def _is_text(value: object, max_bytes: int) -> bool:
    # Strict UTF-8: a lone surrogate (JSON allows "\ud800") is not text,
    # and could not be canonically encoded.
    if not isinstance(value, str):
        return False
    try:
        return len(value.encode("utf-8")) <= max_bytes
    except UnicodeEncodeError:
        return False


def validate_name(name: object) -> bool:
    """
    @return: whether C{name} is a valid display name: 1-32 printable
        characters, no whitespace.
    """
    return (
        isinstance(name, str)
        and 1 <= len(name) <= 32
        and name.isprintable()
        and not any(c.isspace() for c in name)
    )


def validate_body(kind: str, body: object) -> None:
    """
    Check that C{body} has the shape C{kind} requires.

      - chat: C{{"name": NAME, "text": TEXT}}
      - dm: C{{"name": NAME, "to": NODE_ID, "box": B64, "self_box": B64}}:
        the text sealed to the recipient and to the author.

    @raise InvalidEntry: if it does not.
    """
    if not isinstance(body, dict):
        raise InvalidEntry("body is not an object")
    if not validate_name(body.get("name")):
        raise InvalidEntry("body.name is not a valid name")
    if kind == "chat":
        if set(body) != {"name", "text"}:
            raise InvalidEntry("chat body must have exactly name and text")
        text = body["text"]
        if not _is_text(text, MAX_TEXT_BYTES) or not text:
            raise InvalidEntry("chat text is empty, not a string, or too long")
    elif kind == "dm":
        if set(body) != {"name", "to", "box", "self_box"}:
            raise InvalidEntry("dm body must have exactly name, to, box, self_box")
        if not is_node_id(body["to"]):
            raise InvalidEntry("dm recipient is not a node id")
        for key in ("box", "self_box"):
            if not _is_text(body[key], MAX_BODY_BYTES // 2):
                raise InvalidEntry(f"dm {key} is not a string or too long")
    else:
        raise InvalidEntry(f"unknown kind {kind!r}")
    if len(canonical_json(body)) > MAX_BODY_BYTES:
        raise InvalidEntry("body too large")


def _validate_fields(obj: object) -> None:
    """
    Check every field of an unsigned entry: types, ranges, the chain link
    form (C{prev} is null iff C{seq} is 1) and the body's shape.

    @raise InvalidEntry: naming the first problem found.
    """
    if not isinstance(obj, dict):
        raise InvalidEntry("entry is not an object")
    if set(obj) != ENTRY_KEYS - {"sig"}:
        raise InvalidEntry("entry has missing or unknown fields")
    if not is_node_id(obj["author"]):
        raise InvalidEntry("author is not a node id")
    if not _is_int(obj["seq"], 1):
        raise InvalidEntry("seq is not a positive integer")
    prev = obj["prev"]
    if obj["seq"] == 1:
        if prev is not None:
            raise InvalidEntry("first entry must have prev null")
    elif not (isinstance(prev, str) and len(prev) == 64 and is_node_id(prev)):
        raise InvalidEntry("prev is not an entry id")
    if not _is_int(obj["lamport"], 1):
        raise InvalidEntry("lamport is not a positive integer")
    if not _is_int(obj["ts"], 0):
        raise InvalidEntry("ts is not a non-negative integer")
    if obj["kind"] not in KINDS:
        raise InvalidEntry(f"unknown kind {obj['kind']!r}")
    validate_body(obj["kind"], obj["body"])


def _entry(wire: Dict[str, Any]) -> Entry:
    return Entry(id=entry_id(wire), **wire)


def decode_entry(obj: object) -> Entry:
    """
    Validate and verify an entry received from anywhere.

    Checks every field (see L{_validate_fields}) and the signature.  Does
    not check the chain against a store: see L{p2pchat.store.Store}.

    @raise InvalidEntry: naming the first problem found.
    """
    if not isinstance(obj, dict):
        raise InvalidEntry("entry is not an object")
    if set(obj) != ENTRY_KEYS:
        raise InvalidEntry("entry has missing or unknown fields")
    unsigned = _unsigned(obj)
    _validate_fields(unsigned)
    sig = obj["sig"]
    if not (isinstance(sig, str) and len(sig) == 128):
        raise InvalidEntry("sig is not 64 bytes of hex")
    try:
        signature = bytes.fromhex(sig)
    except ValueError:
        raise InvalidEntry("sig is not hex") from None
    message = SIGNING_CONTEXT + canonical_json(unsigned)
    if not verify_signature(obj["author"], message, signature):
        raise InvalidEntry("bad signature")
    return _entry(obj)


def create_entry(
    identity: Identity,
    seq: int,
    prev: Optional[str],
    lamport: int,
    ts: int,
    kind: str,
    body: Dict[str, Any],
) -> Entry:
    """
    Author and sign a new entry.

    The fields are validated exactly as L{decode_entry} validates them, so
    a bad field raises here rather than producing an entry every receiver
    would reject; the fresh signature is not verified again.

    @raise InvalidEntry: if a field is invalid.
    """
    unsigned = {
        "author": identity.node_id,
        "seq": seq,
        "prev": prev,
        "lamport": lamport,
        "ts": ts,
        "kind": kind,
        "body": body,
    }
    _validate_fields(unsigned)
    sig = identity.sign(SIGNING_CONTEXT + canonical_json(unsigned)).hex()
    return _entry(dict(unsigned, sig=sig))
