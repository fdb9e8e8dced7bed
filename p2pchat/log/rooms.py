# -*- test-case-name: tests.unit.test_rooms -*-
"""
Rooms on the wire: room names, the bodies of the room entries, and which
entries a protocol-2 peer understands.

A network carries many conversations (I{rooms}).  Membership, topics and
messages are signed entries in their author's feed, replicated like all
others:

  - C{room.join} C{{"name": NAME, "room": ROOM}}: the author joined ROOM;
  - C{room.part} C{{"name": NAME, "room": ROOM}}: the author left it;
  - C{room.topic} C{{"name": NAME, "room": ROOM, "topic": TEXT}}: the
    author set its topic (empty: no topic); the last by Lamport order wins;
  - C{chat} C{{"name": NAME, "room": ROOM, "text": TEXT}}: a message to
    ROOM.

L{LOBBY} (C{#lobby}) is the network's common room: every member is in it
and its messages are plain C{chat} entries with no C{room} field, exactly
as protocol 2 writes them, so that nodes of protocol 2 keep seeing them.
It is never named on the wire: a C{room} field naming it is refused (one
accepted form per message), and it has no join, part or topic entries.

A room name is C{#} followed by 1-50 ASCII letters, digits, C{-}, C{_} or
C{.}.  Names are case-insensitive: people may type C{#Rust}, which
L{normalise_room} turns into C{#rust}; on the wire only the lower-case
form is accepted (L{is_wire_room}), never normalised, like every other
field (see L{p2pchat.log.entry}).

Pure functions; no imports from the rest of p2pchat but
L{p2pchat.canonical}.
"""

import re
from json.encoder import encode_basestring
from typing import Any, Callable, Dict, Optional

from p2pchat.canonical import is_nfc

LOBBY = "#lobby"
MAX_ROOM_NAME = 50
MAX_TOPIC_BYTES = 390
JOIN = "room.join"
PART = "room.part"
TOPIC = "room.topic"
ROOM_KINDS = (JOIN, PART, TOPIC)
# The entry kinds a protocol-2 node accepts (anything else closes its link).
V2_KINDS = frozenset(["chat", "dm", "cert"])
# The first protocol version whose nodes understand rooms.
ROOMS_VERSION = 3
_ROOM_NAME = re.compile(r"#[A-Za-z0-9._-]{1,%d}" % MAX_ROOM_NAME)
_MEMBER_KEYS = frozenset(["name", "room"])
_TOPIC_KEYS = frozenset(["name", "room", "topic"])


class RoomNameError(ValueError):
    """
    A room name typed by someone is not valid; C{str(error)} says why, in
    words fit for the user.
    """


def normalise_room(text: str) -> str:
    """
    @param text: a room name as a person typed it (C{#Rust}).
    @return: its one accepted form (C{#rust}).
    @raise RoomNameError: if it is not C{#} followed by 1-50 letters,
        digits, C{-}, C{_} or C{.}.
    """
    if not isinstance(text, str) or _ROOM_NAME.fullmatch(text) is None:
        raise RoomNameError(
            "a room name is # followed by 1-50 letters, digits, '-', '_' or '.'"
        )
    return text.lower()


def is_wire_room(value: object) -> bool:
    """
    @return: whether C{value} is a room name in its one accepted form
        (lower case), other than L{LOBBY}, which is never named.
    """
    return (
        isinstance(value, str)
        and _ROOM_NAME.fullmatch(value) is not None
        and value == value.lower()
        and value != LOBBY
    )


def _check_room(body: Dict[str, Any]) -> None:
    room = body["room"]
    if room == LOBBY:
        raise ValueError("room #lobby is never named (lobby messages have no room)")
    if not is_wire_room(room):
        raise ValueError(
            "room is not # and 1-50 lower-case letters, digits, '-', '_' or '.'"
        )


def room_body_json(kind: str, body: Dict[str, Any]) -> str:
    """
    Check the room-specific shape of a room entry's body, or of a chat
    body with a C{room} field (its C{name}, and a chat C{text}, are
    checked by L{p2pchat.log.entry}).

    @param kind: one of L{ROOM_KINDS}, or C{"chat"}.
    @return: the body's canonical encoding (keys sorted), as text.
    @raise ValueError: naming what is wrong.
    """
    if kind in (JOIN, PART):
        if body.keys() != _MEMBER_KEYS:
            raise ValueError(f"{kind} body must have exactly name and room")
        _check_room(body)
        return '{"name":%s,"room":%s}' % (
            encode_basestring(body["name"]),
            encode_basestring(body["room"]),
        )
    if kind == TOPIC:
        if body.keys() != _TOPIC_KEYS:
            raise ValueError("room.topic body must have exactly name, room and topic")
        _check_room(body)
        topic = body["topic"]
        if not _is_topic(topic):
            raise ValueError(
                f"room.topic topic is not a string of at most {MAX_TOPIC_BYTES} bytes"
            )
        if not is_nfc(topic):
            raise ValueError("room.topic topic is not in Unicode NFC")
        return '{"name":%s,"room":%s,"topic":%s}' % (
            encode_basestring(body["name"]),
            encode_basestring(body["room"]),
            encode_basestring(topic),
        )
    # A chat message to a room: text is checked by the caller.
    _check_room(body)
    return '{"name":%s,"room":%s,"text":%s}' % (
        encode_basestring(body["name"]),
        encode_basestring(body["room"]),
        encode_basestring(body["text"]),
    )


def _is_topic(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return len(value.encode("utf-8")) <= MAX_TOPIC_BYTES
    except UnicodeEncodeError:
        return False


def entry_room(kind: str, body: Dict[str, Any]) -> Optional[str]:
    """
    @return: the room an entry belongs to: L{LOBBY} for a chat entry with
        no C{room}, the C{room} of a room message or room entry, C{None}
        for the kinds that belong to no room (C{dm}, C{cert}).
    """
    if kind == "chat":
        return body.get("room", LOBBY)
    if kind in ROOM_KINDS:
        return body["room"]
    return None


def understood_by(version: int, kind: str, body: Dict[str, Any]) -> bool:
    """
    @param version: the protocol version spoken on a link.
    @return: whether a peer speaking C{version} accepts this entry: one of
        protocol 2 refuses the room kinds and a chat body with a C{room}
        field, and closes the link as misbehaving.
    """
    if version >= ROOMS_VERSION:
        return True
    return kind in V2_KINDS and "room" not in body


def reaches_link(entry) -> Optional[Callable[[object], bool]]:
    """
    @param entry: an L{p2pchat.log.entry.Entry}.
    @return: C{None} when every link may carry C{entry} (protocol 2 knows
        it), else a test of a link (by its C{version}) for
        L{p2pchat.log.replication.Replicator.entry_added}.
    """
    if understood_by(2, entry.kind, entry.body):
        return None
    return lambda link: understood_by(link.version, entry.kind, entry.body)
