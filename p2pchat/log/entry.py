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

Every field has exactly one accepted form (L{p2pchat.canonical}): hex in
lower case (C{author}, C{prev}, C{sig}, dm C{to}, cert C{proof}), integers
as JSON integers, names and chat text in Unicode NFC, dm boxes in canonical
base64.  Any other form is refused, never normalised: C{sig} is hashed into
the id but not signed, so a relay that could re-case it would give the
author's entry a second id and fork the feed.  Key order and whitespace in
the received line never reach the id, which hashes our own re-encoding.
"""

import hashlib
import json
from dataclasses import dataclass
from json.encoder import encode_basestring
from typing import Any, Dict, Optional

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

from p2pchat.canonical import is_canonical_base64, is_lower_hex, is_nfc, nfc
from p2pchat.log.identity import Identity, is_node_id

SIGNING_CONTEXT = b"p2pchat-entry-v1\n"
MAX_TEXT_BYTES = 4096
MAX_BODY_BYTES = 16384
MAX_INTEGER = 2**53
KINDS = ("chat", "dm", "cert")
ENTRY_KEYS = frozenset(
    ["author", "seq", "prev", "lamport", "ts", "kind", "body", "sig"]
)
_UNSIGNED_KEYS = ENTRY_KEYS - {"sig"}
_CHAT_KEYS = frozenset(["name", "text"])
_DM_KEYS = frozenset(["name", "to", "box", "self_box"])
_CERT_KEYS = frozenset(["name", "cert", "proof"])
# Verify keys of recent authors, so that a stream of one author's entries
# does not build the same key object again for every entry.
_VERIFY_KEYS: Dict[str, VerifyKey] = {}
_VERIFY_KEYS_MAX = 4096


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


def body_json(body: Dict[str, Any]) -> str:
    """
    @return: C{canonical_json(body).decode("utf-8")}, built directly for
        the usual chat body (exactly C{name} and C{text}, both strings).
    """
    if body.keys() == _CHAT_KEYS:
        name, text = body["name"], body["text"]
        if type(name) is str and type(text) is str:
            return '{"name":%s,"text":%s}' % (encode_basestring(name), encode_basestring(text))
    return canonical_json(body).decode("utf-8")


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
        characters, no whitespace, in Unicode NFC (one spelling per name).
    """
    # name.split() == [name] exactly when name is non-empty and has no
    # character for which str.isspace() holds (both use one definition).
    return (
        isinstance(name, str)
        and 1 <= len(name) <= 32
        and name.isprintable()
        and name.split() == [name]
        and is_nfc(name)
    )


def validate_body(kind: str, body: object) -> None:
    """
    Check that C{body} has the shape C{kind} requires.

      - chat: C{{"name": NAME, "text": TEXT}}
      - dm: C{{"name": NAME, "to": NODE_ID, "box": B64, "self_box": B64}}:
        the text sealed to the recipient and to the author.

    @raise InvalidEntry: if it does not.
    """
    _body_json(kind, body)


def _body_json(kind: str, body: object) -> str:
    """
    Check C{body} as L{validate_body} does.

    @return: its canonical encoding, as text (not yet UTF-8 encoded).
    @raise InvalidEntry: if it has the wrong shape.
    """
    if not isinstance(body, dict):
        raise InvalidEntry("body is not an object")
    if not validate_name(body.get("name")):
        raise InvalidEntry("body.name is not a valid name")
    if kind == "chat":
        if body.keys() != _CHAT_KEYS:
            raise InvalidEntry("chat body must have exactly name and text")
        text = body["text"]
        if not _is_text(text, MAX_TEXT_BYTES) or not text:
            raise InvalidEntry("chat text is empty, not a string, or too long")
        if not is_nfc(text):
            raise InvalidEntry("chat text is not in Unicode NFC")
        # Every value is a string: the canonical encoding, keys sorted.
        encoded = '{"name":%s,"text":%s}' % (
            encode_basestring(body["name"]),
            encode_basestring(text),
        )
    elif kind == "dm":
        if body.keys() != _DM_KEYS:
            raise InvalidEntry("dm body must have exactly name, to, box, self_box")
        if not is_node_id(body["to"]):
            raise InvalidEntry("dm recipient is not a node id")
        for key in ("box", "self_box"):
            if not _is_text(body[key], MAX_BODY_BYTES // 2):
                raise InvalidEntry(f"dm {key} is not a string or too long")
            if not is_canonical_base64(body[key]):
                raise InvalidEntry(f"dm {key} is not canonical base64")
        encoded = '{"box":%s,"name":%s,"self_box":%s,"to":%s}' % (
            encode_basestring(body["box"]),
            encode_basestring(body["name"]),
            encode_basestring(body["self_box"]),
            encode_basestring(body["to"]),
        )
    elif kind == "cert":
        if body.keys() != _CERT_KEYS:
            raise InvalidEntry("cert body must have exactly name, cert, proof")
        if not _is_text(body["cert"], MAX_BODY_BYTES // 2) or not body["cert"].isascii():
            raise InvalidEntry("cert certificate is not an ASCII string or too long")
        proof = body["proof"]
        if not (
            isinstance(proof, str)
            and 0 < len(proof) <= 1024
            and len(proof) % 2 == 0
            and is_lower_hex(proof, len(proof))
        ):
            raise InvalidEntry("cert proof is not lowercase hex bytes")
        encoded = '{"cert":%s,"name":%s,"proof":%s}' % (
            encode_basestring(body["cert"]),
            encode_basestring(body["name"]),
            encode_basestring(proof),
        )
    else:
        raise InvalidEntry(f"unknown kind {kind!r}")
    if len(encoded.encode("utf-8")) > MAX_BODY_BYTES:
        raise InvalidEntry("body too large")
    return encoded


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

    The body's C{name} and C{text} are first normalised to Unicode NFC
    (the only form receivers accept).  The fields are then validated
    exactly as L{decode_entry} validates them, so a bad field raises here
    rather than producing an entry every receiver would reject; the fresh
    signature is not verified again.

    @raise InvalidEntry: if a field is invalid.
    """
    if isinstance(body, dict):
        body = {key: nfc(value) if key in ("name", "text") else value
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
