# -*- test-case-name: tests.unit.test_chat_rooms -*-
"""
Who is in which room and each room's topic: L{RoomDirectory}, sans-IO,
built from the room entries (L{p2pchat.chat.rooms} is the API on top).

The log holds the facts (room entries in each author's feed, see
L{p2pchat.log.rooms}); this module only reads them: a member of a room is
an author whose last C{room.join} or C{room.part} for it, in display order
(Lamport time, author, seq), is a join; a room's topic is its last
C{room.topic} in display order.  So every node holding the same entries
shows the same members and topics, whatever order the entries came in.
#lobby (L{LOBBY}) has no room entries: every member of the network is in
it.
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from p2pchat.log.entry import Entry
from p2pchat.log.rooms import JOIN, TOPIC, entry_room

Key = Tuple[int, str, int]


def display_key(entry: Entry) -> Key:
    """
    @return: the display order of C{entry}: Lamport time, author, seq.
    """
    return (entry.lamport, entry.author, entry.seq)


@dataclass(frozen=True)
class RoomEvent:
    """
    Something that happened in a room, as the faces show it.

    @ivar kind: C{"message"}, C{"join"}, C{"part"} or C{"topic"}.
    @ivar room: the room, L{LOBBY} for a message without a room.
    @ivar entry: the entry it comes from.
    @ivar text: the message's text or the new topic (C{""} otherwise).
    """

    kind: str
    room: str
    entry: Entry
    text: str = ""

    @property
    def author(self) -> str:
        return self.entry.author


class RoomDirectory:
    """
    Who is in which room, and each room's topic, from the room entries
    given to L{apply} in any order.  Sans-IO.
    """

    def __init__(self):
        # (room, author) -> (display key, joined?)
        self._presence: Dict[Tuple[str, str], Tuple[Key, bool]] = {}
        # room -> (display key, topic entry)
        self._topics: Dict[str, Tuple[Key, Entry]] = {}
        self._rooms: Dict[str, None] = {}

    def apply(self, entry: Entry) -> Optional[RoomEvent]:
        """
        Take one stored entry into account.

        @return: the event it is (a message, join, part or topic; C{None}
            for a C{dm} or C{cert}), whether or not it is the latest word.
        """
        room = entry_room(entry.kind, entry.body)
        if room is None:
            return None
        self._rooms[room] = None
        key = display_key(entry)
        if entry.kind == "chat":
            return RoomEvent("message", room, entry, entry.body["text"])
        if entry.kind == TOPIC:
            known = self._topics.get(room)
            if known is None or known[0] < key:
                self._topics[room] = (key, entry)
            return RoomEvent("topic", room, entry, entry.body["topic"])
        known = self._presence.get((room, entry.author))
        if known is None or known[0] < key:
            self._presence[(room, entry.author)] = (key, entry.kind == JOIN)
        return RoomEvent("join" if entry.kind == JOIN else "part", room, entry)

    def rooms(self) -> List[str]:
        """
        @return: every room named by an entry applied, sorted.
        """
        return sorted(self._rooms)

    def members(self, room: str) -> List[str]:
        """
        @return: the authors in C{room} (not #lobby), sorted.
        """
        return sorted(
            author for (name, author), (_, joined) in self._presence.items()
            if name == room and joined
        )

    def is_member(self, room: str, author: str) -> bool:
        known = self._presence.get((room, author))
        return known is not None and known[1]

    def rooms_of(self, author: str) -> List[str]:
        """
        @return: the rooms C{author} is in (not #lobby), sorted.
        """
        return sorted(
            room for (room, who), (_, joined) in self._presence.items()
            if who == author and joined
        )

    def topic(self, room: str) -> Optional[Entry]:
        """
        @return: the C{room.topic} entry that sets C{room}'s topic now, or
            C{None}.
        """
        known = self._topics.get(room)
        return None if known is None else known[1]
