# -*- test-case-name: tests.unit.test_entry -*-
"""
The bodies of log entries: the shape each kind requires, display names,
and the canonical encoding of a body (L{p2pchat.log.entry} signs and
hashes it).  The room kinds' own rules are in L{p2pchat.log.rooms}.
"""

import json
from json.encoder import encode_basestring
from typing import Any, Dict

from p2pchat.canonical import is_canonical_base64, is_lower_hex, is_nfc
from p2pchat.log.identity import is_node_id
from p2pchat.log.rooms import ROOM_KINDS, room_body_json

MAX_TEXT_BYTES = 4096
MAX_BODY_BYTES = 16384

_CHAT_KEYS = frozenset(["name", "text"])
_ROOM_CHAT_KEYS = frozenset(["name", "room", "text"])
_DM_KEYS = frozenset(["name", "to", "box", "self_box"])
_CERT_KEYS = frozenset(["name", "cert", "proof"])


class InvalidEntry(ValueError):
    """
    An entry failed validation; C{str(error)} says why, in a few words.
    """


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

      - chat: C{{"name": NAME, "text": TEXT}}, and C{"room": ROOM} in a room
      - room.join, room.part, room.topic: see L{p2pchat.log.rooms}
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
        if body.keys() != _CHAT_KEYS and body.keys() != _ROOM_CHAT_KEYS:
            raise InvalidEntry("chat body must have exactly name and text (and room)")
        text = body["text"]
        if not _is_text(text, MAX_TEXT_BYTES) or not text:
            raise InvalidEntry("chat text is empty, not a string, or too long")
        if not is_nfc(text):
            raise InvalidEntry("chat text is not in Unicode NFC")
        # Every value is a string: the canonical encoding, keys sorted.
        encoded = '{"name":%s,"text":%s}' % (
            encode_basestring(body["name"]),
            encode_basestring(text),
        ) if len(body) == 2 else _room_body_json(kind, body)
    elif kind in ROOM_KINDS:
        encoded = _room_body_json(kind, body)
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


def _room_body_json(kind: str, body: Dict[str, Any]) -> str:
    try:
        return room_body_json(kind, body)
    except ValueError as e:
        raise InvalidEntry(str(e)) from None


def canonical_json(value: Any) -> bytes:
    """
    @return: the canonical encoding of C{value}.
    """
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False
    ).encode("utf-8")
