# -*- test-case-name: tests.unit.test_chat_rooms -*-
"""
Rooms in the chat layer: who is in which room and each room's topic
(L{RoomDirectory}, sans-IO, from the room entries), and L{Rooms}, the one
place every face calls for rooms: join, part, list, topic, names,
post-to-room, history, search, unread counts, the persisted current room,
and a stream of L{RoomEvent}s.

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
from typing import Callable, Dict, List, Optional, Tuple

from p2pchat.log.entry import Entry, InvalidEntry
from p2pchat.log.rooms import JOIN, LOBBY, PART, TOPIC, entry_room
from p2pchat.log.store import Store

# The local setting that holds the current room.
CURRENT_ROOM = "current_room"

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


@dataclass(frozen=True)
class RoomInfo:
    """
    One line of the room list.

    @ivar members: how many members it has.
    @ivar messages: how many messages it holds.
    @ivar topic: its topic, C{""} for none.
    @ivar mine: whether the local user is in it.
    """

    name: str
    members: int
    messages: int
    topic: str
    mine: bool


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


class Rooms:
    """
    The rooms of one local user: what the faces call (through the chat
    API) and the stream of room events they show.

    @ivar directory: the L{RoomDirectory} of every room entry stored.
    """

    def __init__(
        self,
        store: Store,
        node_id: str,
        author: Callable[[str, dict], Entry],
        name: Callable[[], str],
    ):
        """
        @param author: authors, signs and queues an entry of a kind and
            body in the local feed (L{p2pchat.chat.node.ChatNode}'s).
        @param name: the local user's display name now.
        """
        self._store = store
        self._node_id = node_id
        self._author = author
        self._name = name
        self._listeners: List[Callable[[RoomEvent], None]] = []
        self.directory = RoomDirectory()

    def load(self) -> None:
        """
        Read every room entry stored (at start: cheap, through their own
        index).
        """
        for entry in self._store.room_events():
            self.directory.apply(entry)

    # -- the stream of events ----------------------------------------------

    def subscribe(self, listener: Callable[[RoomEvent], None]) -> Callable[[], None]:
        """
        Call C{listener} with every L{RoomEvent} of a newly stored entry.

        @return: a function that unsubscribes it.
        """
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener) if listener in self._listeners else None

    def entry_stored(self, entry: Entry) -> Optional[RoomEvent]:
        """
        A new entry was committed to the store: update the directory and
        tell the listeners.

        @return: its event, or C{None}.
        """
        event = self.directory.apply(entry)
        if event is not None:
            for listener in list(self._listeners):
                listener(event)
        return event

    # -- acting --------------------------------------------------------------

    def joined(self) -> List[str]:
        """
        @return: the rooms the local user is in, #lobby first.
        """
        return [LOBBY] + self.directory.rooms_of(self._node_id)

    def join(self, room: str) -> Optional[Entry]:
        """
        Join (or create) C{room}, a name in its wire form.

        @return: the C{room.join} entry, or C{None} if already in it (or
            it is #lobby, which every member is in).
        """
        if room == LOBBY or self.directory.is_member(room, self._node_id):
            return None
        return self._author(JOIN, {"name": self._name(), "room": room})

    def part(self, room: str) -> Entry:
        """
        Leave C{room}.

        @raise InvalidEntry: for #lobby, or a room the user is not in.
        """
        if room == LOBBY:
            raise InvalidEntry("#lobby cannot be left: every member is in it")
        if not self.directory.is_member(room, self._node_id):
            raise InvalidEntry(f"you are not in {room}")
        return self._author(PART, {"name": self._name(), "room": room})

    def set_topic(self, room: str, topic: str) -> Entry:
        """
        Set C{room}'s topic (C{""} clears it).

        @raise InvalidEntry: for #lobby, which has no topic, or a topic
            that is too long.
        """
        if room == LOBBY:
            raise InvalidEntry("#lobby has no topic")
        return self._author(TOPIC, {"name": self._name(), "room": room, "topic": topic})

    def post(self, room: str, text: str) -> Entry:
        """
        Send C{text} to C{room} (#lobby: a plain chat entry).

        @raise InvalidEntry: if the text is empty or too long.
        """
        if not text:
            raise InvalidEntry("message is empty")
        body = {"name": self._name(), "text": text}
        if room != LOBBY:
            body["room"] = room
        return self._author("chat", body)

    # -- reading -------------------------------------------------------------

    def topic(self, room: str) -> str:
        """
        @return: C{room}'s topic, C{""} for none.
        """
        entry = self.directory.topic(room)
        return "" if entry is None else entry.body["topic"]

    def list(self, lobby_members: int) -> List[RoomInfo]:
        """
        @param lobby_members: how many members #lobby has (the network's).
        @return: every room known (with an entry or a message), #lobby
            first, then by name.
        """
        counts = self._store.room_message_counts()
        mine = set(self.joined())
        names = sorted(set(self.directory.rooms()) | set(counts) | {LOBBY})
        names.remove(LOBBY)
        return [
            RoomInfo(
                room,
                lobby_members if room == LOBBY else len(self.directory.members(room)),
                counts.get(room, 0),
                self.topic(room),
                room in mine,
            )
            for room in [LOBBY] + names
        ]

    def members(self, room: str) -> List[str]:
        """
        @return: the authors in C{room} (not #lobby), sorted.
        """
        return self.directory.members(room)

    def history(self, room: str, limit: int, blocked) -> List[Entry]:
        """
        @return: the last C{limit} entries of C{room} other than #lobby
            (messages and room entries), leaving out the C{blocked}.
        """
        return self._store.room_history(room, limit, blocked)

    def search(self, room: str, text: str, limit: int = 50) -> List[Entry]:
        """
        @return: the newest messages of C{room} other than #lobby with
            every word of C{text}.
        @raise p2pchat.log.store.SearchRefused: too broad.
        """
        return self._store.room_search(room, text, limit)

    def unread(self) -> Dict[str, int]:
        """
        @return: for each room the user is in, the messages stored since
            it was last read.
        """
        return {room: self._store.unread(room) for room in self.joined()}

    def mark_read(self, room: str) -> None:
        """
        The user has seen everything of C{room} up to now.
        """
        self._store.mark_read(room)

    def current(self) -> str:
        """
        @return: the current room last chosen (kept in the store), #lobby
            at first or when the user is no longer in it.
        """
        room = self._store.setting(CURRENT_ROOM)
        if room is None or room not in self.joined():
            return LOBBY
        return room

    def set_current(self, room: str) -> None:
        """
        Remember C{room} as the current room (for new consoles and after a
        restart).
        """
        self._store.set_setting(CURRENT_ROOM, room)

