"""
Log entries: their canonical encoding, signing and verification.

An entry is one signed record in an author's hash-chained feed.  Its wire
form is a JSON object with exactly these keys::

    author   64 hex digits: the author's node id (Ed25519 public key)
    seq      the author's sequence number, 1, 2, 3 ...
    prev     the id of the author's entry seq-1, or null when seq is 1
    lamport  Lamport time: greater than every entry the author had seen
    ts       the author's wall-clock time, integer milliseconds since 1970
    kind     "chat", "dm", "cert", "room.join", "room.part" or "room.topic"
    body     an object whose shape depends on kind (see L{validate_body})
    sig      128 hex digits: Ed25519 signature by author

The I{canonical encoding} of a JSON value is C{json.dumps(value,
sort_keys=True, separators=(",", ":"), ensure_ascii=False)} encoded as
UTF-8.  The signature covers C{SIGNING_CONTEXT} followed by the canonical
encoding of the entry without C{sig}; the entry id is the SHA-256 (hex) of
the canonical encoding of the whole entry including C{sig}.  The id is
never sent: every receiver computes it.

Every field has exactly one accepted form (L{p2pchat.canonical}): hex in
lower case (C{author}, C{prev}, C{sig}, dm C{to}, cert C{proof}), integers
as JSON integers, names and chat text in Unicode NFC, dm boxes in canonical
base64.  Any other form is refused, never normalised: C{sig} is hashed into
the id but not signed, so a relay that could re-case it would give the
author's entry a second id and fork the feed.  Key order and whitespace in
the received line never reach the id, which hashes our own re-encoding.
"""

import hashlib
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Dict, Optional

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

from p2pchat.canonical import is_lower_hex, nfc
from p2pchat.log.bodies import (  # noqa: F401 (the entry's public API)
    MAX_BODY_BYTES,
    MAX_TEXT_BYTES,
    InvalidEntry,
    _body_json,
    canonical_json,
    validate_body,
    validate_name,
)
from p2pchat.log.identity import Identity, is_node_id
from p2pchat.log.rooms import ROOM_KINDS

SIGNING_CONTEXT = b"p2pchat-entry-v1\n"
MAX_INTEGER = 2**53
KINDS = ("chat", "dm", "cert") + ROOM_KINDS
ENTRY_KEYS = frozenset(
    ["author", "seq", "prev", "lamport", "ts", "kind", "body", "sig"]
)
_UNSIGNED_KEYS = ENTRY_KEYS - {"sig"}
# Verify keys of recent authors, so that a stream of one author's entries
# does not build the same key object again for every entry.
_VERIFY_KEYS: Dict[str, VerifyKey] = {}
_VERIFY_KEYS_MAX = 4096


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


def _validate_fields(obj: object) -> str:
    """
    Check every field of an unsigned entry: types, ranges, the chain link
    form (C{prev} is null iff C{seq} is 1) and the body's shape.

    @return: the canonical encoding of the body, as text.
    @raise InvalidEntry: naming the first problem found.
    """
    if not isinstance(obj, dict):
        raise InvalidEntry("entry is not an object")
    if obj.keys() != _UNSIGNED_KEYS:
        raise InvalidEntry("entry has missing or unknown fields")
    return _check_fields(obj)


def _check_fields(obj: Dict[str, Any]) -> str:
    """
    L{_validate_fields} for a dict whose keys are known to be those of an
    entry (with or without C{sig}, which is not looked at).
    """
    if not is_node_id(obj["author"]):
        raise InvalidEntry("author is not a node id")
    if not _is_int(obj["seq"], 1):
        raise InvalidEntry("seq is not a positive integer")
    prev = obj["prev"]
    if obj["seq"] == 1:
        if prev is not None:
            raise InvalidEntry("first entry must have prev null")
    elif not is_node_id(prev):
        raise InvalidEntry("prev is not an entry id")
    if not _is_int(obj["lamport"], 1):
        raise InvalidEntry("lamport is not a positive integer")
    if not _is_int(obj["ts"], 0):
        raise InvalidEntry("ts is not a non-negative integer")
    if obj["kind"] not in KINDS:
        raise InvalidEntry(f"unknown kind {obj['kind']!r}")
    return _body_json(obj["kind"], obj["body"])


def _encode_checked(obj: Dict[str, Any], body_json: str) -> tuple:
    """
    The canonical encodings of an entry whose fields passed
    L{_check_fields}, built from its fields in one pass instead of
    serializing the whole object twice.  Equal, byte for byte, to
    C{canonical_json} of the unsigned and of the signed entry: keys in
    sorted order (author, body, kind, lamport, prev, seq, sig, ts), strings
    encoded by the same function C{json.dumps} uses, integers as
    C{int.__repr__} writes them.

    @param body_json: the body's canonical encoding (L{_body_json}).
    @return: C{(unsigned, signed)}: the unsigned entry's encoding, and the
        whole entry's (C{None} if C{obj} has no C{sig}), as UTF-8 bytes.
    """
    prev = obj["prev"]
    head = '{"author":%s,"body":%s,"kind":%s,"lamport":%s,"prev":%s,"seq":%s' % (
        encode_basestring(obj["author"]),
        body_json,
        encode_basestring(obj["kind"]),
        int.__repr__(obj["lamport"]),
        "null" if prev is None else encode_basestring(prev),
        int.__repr__(obj["seq"]),
    )
    tail = ',"ts":%s}' % int.__repr__(obj["ts"])
    unsigned = (head + tail).encode("utf-8")
    sig = obj.get("sig")
    if sig is None:
        return unsigned, None
    signed = (head + ',"sig":' + encode_basestring(sig) + tail).encode("utf-8")
    return unsigned, signed


def _verify(author: str, message: bytes, signature: bytes) -> bool:
    """
    L{p2pchat.log.identity.verify_signature}, with the verify key of each
    recent author kept instead of rebuilt for every entry.

    @param author: a node id (64 lowercase hex digits).
    """
    key = _VERIFY_KEYS.get(author)
    if key is None:
        try:
            key = VerifyKey(bytes.fromhex(author))
        except (ValueError, CryptoError):
            return False
        if len(_VERIFY_KEYS) >= _VERIFY_KEYS_MAX:
            _VERIFY_KEYS.clear()
        _VERIFY_KEYS[author] = key
    try:
        key.verify(message, signature)
    except (BadSignatureError, ValueError, CryptoError):
        return False
    return True


class UnverifiedEntry:
    """
    A received entry whose fields are valid and whose id is known, but
    whose signature is not checked yet: L{verify} checks it.

    Made by L{parse_entry}; its canonical encodings are computed once and
    used both for the signature and for the id.

    @ivar id: the entry id (SHA-256 of the canonical encoding of the whole
        entry).
    @ivar author: the author's node id.
    @ivar seq: the author's sequence number.
    """

    __slots__ = ("id", "author", "seq", "_wire", "_message", "_signature")

    def __init__(self, wire: Dict[str, Any], message: bytes, signed: bytes, signature: bytes):
        self._wire = wire
        self._message = message
        self._signature = signature
        self.author = wire["author"]
        self.seq = wire["seq"]
        self.id = hashlib.sha256(signed).hexdigest()

    @property
    def size(self) -> int:
        """
        @return: the length of the signed message, in bytes.
        """
        return len(self._message)

    def verify(self) -> Entry:
        """
        @return: the verified L{Entry}.
        @raise InvalidEntry: if the signature is not the author's.
        """
        if not _verify(self.author, self._message, self._signature):
            raise InvalidEntry("bad signature")
        return Entry(id=self.id, **self._wire)


def parse_entry(obj: object) -> UnverifiedEntry:
    """
    The checks of L{decode_entry} but the signature: every field (see
    L{_validate_fields}) and the form of C{sig}.  The signature is
    checked by L{UnverifiedEntry.verify}, so that a caller can first drop,
    by its id, an entry it already holds.

    @raise InvalidEntry: naming the first problem found.
    """
    if not isinstance(obj, dict):
        raise InvalidEntry("entry is not an object")
    if obj.keys() != ENTRY_KEYS:
        raise InvalidEntry("entry has missing or unknown fields")
    body_json = _check_fields(obj)
    sig = obj["sig"]
    if not is_lower_hex(sig, 128):
        raise InvalidEntry("sig is not 64 bytes of lowercase hex")
    signature = bytes.fromhex(sig)
    unsigned, signed = _encode_checked(obj, body_json)
    return UnverifiedEntry(obj, SIGNING_CONTEXT + unsigned, signed, signature)


def decode_entry(obj: object) -> Entry:
    """
    Validate and verify an entry received from anywhere.

    Checks every field (see L{_validate_fields}) and the signature.  Does
    not check the chain against a store: see L{p2pchat.log.store.core.Store}.

    @raise InvalidEntry: naming the first problem found.
    """
    return parse_entry(obj).verify()


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

    The body's C{name}, C{text} and C{topic} are first normalised to Unicode NFC
    (the only form receivers accept).  The fields are then validated
    exactly as L{decode_entry} validates them, so a bad field raises here
    rather than producing an entry every receiver would reject; the fresh
    signature is not verified again.

    @raise InvalidEntry: if a field is invalid.
    """
    if isinstance(body, dict):
        body = {key: nfc(value) if key in ("name", "text", "topic") else value
                for key, value in body.items()}
    unsigned = {
        "author": identity.node_id,
        "seq": seq,
        "prev": prev,
        "lamport": lamport,
        "ts": ts,
        "kind": kind,
        "body": body,
    }
    body_json = _validate_fields(unsigned)
    message, _ = _encode_checked(unsigned, body_json)
    sig = identity.sign(SIGNING_CONTEXT + message).hex()
    wire = dict(unsigned, sig=sig)
    _, signed = _encode_checked(wire, body_json)
    return Entry(id=hashlib.sha256(signed).hexdigest(), **wire)
