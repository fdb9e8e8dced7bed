# -*- test-case-name: tests.unit.test_chat_rooms -*-
"""
Rooms for one local author: the part of the chat API every face calls for
rooms (L{ChatService.rooms<p2pchat.chat.service.ChatService>}).

  - acting: L{Rooms.join}, L{Rooms.part}, L{Rooms.set_topic}, L{Rooms.post};
  - reading: L{Rooms.list}, L{Rooms.names}, L{Rooms.topic},
    L{Rooms.history}, L{Rooms.search}, L{Rooms.unread};
  - local state, kept in the store: L{Rooms.current}, L{Rooms.mark_read};
  - the stream: the chat service's listeners get every message and room
    event (join, part, topic) of the rooms the author is in, as
    L{Message}s with their C{room} and C{event} (L{Rooms.visible} decides).

Room names are taken as people type them (C{#Rust}) and normalised
(L{normalise_room}); a bad name raises L{RoomNameError}.  The facts are
room entries in each author's feed: a member of a room is an author whose
last C{room.join} or C{room.part} for it, in display order (Lamport time,
author, seq), is a join, and a room's topic is its last C{room.topic} in
display order, so every node holding the same entries shows the same
members and topics.  The store keeps both as entries are stored
(L{p2pchat.log.store.rooms}); nothing about other authors' rooms is held
in memory, however many rooms a network has.
"""

from typing import Dict, List, Optional

from twisted.logger import Logger

from p2pchat.chat.messages import Message, RoomInfo, RoomMember
from p2pchat.log.entry import Entry, InvalidEntry
from p2pchat.log.feed import Feed
from p2pchat.log.rooms import JOIN, LOBBY, PART, TOPIC, RoomNameError, normalise_room
from p2pchat.log.store import StoreError

__all__ = ["LOBBY", "RoomNameError", "Rooms", "normalise_room"]

# The local setting that holds the current room.
CURRENT_ROOM = "current_room"
# Rooms.list lists at most this many rooms (and all of the author's).
MAX_LISTED_ROOMS = 500


class Rooms:
    """
    The rooms of a L{p2pchat.chat.service.ChatService}'s local author.
    """

    log = Logger()

    def __init__(self, chat, feed: Feed):
        """
        @param chat: the L{p2pchat.chat.service.ChatService} these rooms
            belong to (its author, names, block list, messages).
        @param feed: the node's feed: writes entries, reads the store.
        """
        self._chat = chat
        self._feed = feed
        self._store = feed.store

    def _write(self, kind: str, body: dict) -> Entry:
        return self._feed.author(self._chat.author.identity, kind, body)

    def _is_mine(self, room: str) -> bool:
        # What is queued is committed first: a line typed right after
        # /join goes to the room.
        return self._feed.read(self._store.room_is_member, room, self._chat.node_id)

    def visible(self, message: Message) -> bool:
        """
        @return: whether the author's faces show C{message} as it arrives:
            direct messages and #lobby always, a room's messages and
            events while the author is in it (and the author's own part).
        """
        room = message.room
        if room is None or room == LOBBY or message.entry.author == self._chat.node_id:
            return True
        # Called as entries are committed: the store is up to date.
        return self._store.room_is_member(room, self._chat.node_id)

    # -- acting --------------------------------------------------------------

    def joined(self) -> List[str]:
        """
        @return: the rooms the author is in, #lobby first.
        """
        return [LOBBY] + self._feed.read(self._store.rooms_of, self._chat.node_id)

    def join(self, room: str) -> Optional[Entry]:
        """
        Join (or create) C{room}.

        @param room: a room name as typed.
        @return: the C{room.join} entry, or C{None} if the author is in
            it already (always in #lobby).
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        if room == LOBBY or self._is_mine(room):
            return None
        return self._write(JOIN, {"name": self._chat.name, "room": room})

    def part(self, room: str) -> Entry:
        """
        Leave C{room}; its history stays stored.

        @raise InvalidEntry: for #lobby, or a room the author is not in.
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        if room == LOBBY:
            raise InvalidEntry("#lobby cannot be left: every member is in it")
        if not self._is_mine(room):
            raise InvalidEntry(f"you are not in {room}")
        return self._write(PART, {"name": self._chat.name, "room": room})

    def set_topic(self, room: str, topic: str) -> Entry:
        """
        Set C{room}'s topic (C{""} clears it); the last in display order
        wins.

        @raise InvalidEntry: for #lobby, which has no topic, or a topic
            over 390 bytes.
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        if room == LOBBY:
            raise InvalidEntry("#lobby has no topic")
        return self._write(TOPIC, {"name": self._chat.name, "room": room, "topic": topic})

    def post(self, room: str, text: str) -> Entry:
        """
        Send C{text} to C{room} (to #lobby: a plain chat entry, which
        nodes of protocol 2 see too).

        @raise InvalidEntry: if the text is empty or too long, or the
            author is not in C{room}.
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        if room == LOBBY:
            return self._chat.post(text)
        if not self._is_mine(room):
            raise InvalidEntry(f"you are not in {room}; /join it first")
        if not text:
            raise InvalidEntry("message is empty")
        return self._write("chat", {"name": self._chat.name, "room": room, "text": text})

    # -- reading -------------------------------------------------------------

    def topic(self, room: str) -> str:
        """
        @return: C{room}'s topic, C{""} for none.
        """
        entry = self._feed.read(self._store.room_topic, normalise_room(room))
        return "" if entry is None else entry.body["topic"]

    def list(self) -> List[RoomInfo]:
        """
        @return: #lobby first, then by name the author's rooms and the
            other rooms known on the network with the most messages (rooms
            that only have members or a topic after those), at most
            L{MAX_LISTED_ROOMS} of those.
        """
        mine = self.joined()
        others = [room for room in self._feed.read(self._store.busiest_rooms, MAX_LISTED_ROOMS)
                  if room not in mine]
        counts = self._store.room_message_counts_of
        listed = sorted(mine[1:] + others)
        return [
            RoomInfo(room, len(self._members(room)), counts(room), self.topic(room),
                     room in mine)
            for room in [LOBBY] + listed
        ]

    def _members(self, room: str) -> List[str]:
        if room == LOBBY:
            ids = {peer.node_id for peer in self._chat.peers() if peer.state != "left"}
            return sorted(ids | {self._chat.node_id})
        return self._store.room_members(room)

    def names(self, room: str) -> List[RoomMember]:
        """
        @return: the members of C{room} with their state from membership
            (every member of the network that has not left, for #lobby),
            sorted by name then id.
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        states: Dict[str, str] = {peer.node_id: peer.state for peer in self._chat.peers()}
        states[self._chat.node_id] = "alive"
        members = []
        for node_id in self._members(room):
            name = self._chat.name if node_id == self._chat.node_id else (
                self._chat.name_of(node_id) or "?"
            )
            members.append(RoomMember(name, node_id, states.get(node_id, "unknown")))
        return sorted(members, key=lambda m: (m.name, m.node_id))

    def history(self, room: str, limit: int) -> List[Message]:
        """
        @return: the last C{limit} messages and room events of C{room}
            (for #lobby: L{ChatService.history}, with the author's direct
            messages), oldest first.
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        if room == LOBBY:
            return self._chat.history(limit)
        entries = self._feed.read(self._store.room_history, room, limit, self._chat.blocked())
        return [m for m in map(self._chat.message, entries) if m is not None]

    def search(self, room: str, text: str, limit: int = 50) -> List[Message]:
        """
        @return: the newest messages of C{room} containing every word of
            C{text}, oldest first.
        @raise p2pchat.log.store.SearchRefused: for a search too costly.
        @raise RoomNameError: for a bad name.
        """
        room = normalise_room(room)
        if room == LOBBY:
            return self._chat.search(text, limit)
        found = self._feed.read(self._store.room_search, room, text, limit)
        return [m for m in map(self._chat.message, found) if m is not None]

    def unread(self) -> Dict[str, int]:
        """
        @return: for each room the author is in, how many messages were
            stored since it was last read (at most 9999).
        """
        return {room: self._feed.read(self._store.unread, room) for room in self.joined()}

    def mark_read(self, room: str) -> None:
        """
        The author has seen C{room} up to now.  (Not when the store is
        closed: a console that ends while the node stops loses nothing.)
        """
        try:
            self._store.mark_read(normalise_room(room))
        except StoreError as e:
            self.log.info("read position of {room} not kept: {error}", room=room, error=str(e))

    def current(self) -> str:
        """
        @return: the current room last chosen (kept in the store, so new
            consoles and restarts start there), #lobby at first or when
            the author is no longer in it.
        """
        room = self._store.setting(CURRENT_ROOM)
        if room is None or room not in self.joined():
            return LOBBY
        return room

    def set_current(self, room: str) -> None:
        """
        Remember C{room} as the current room.
        """
        self._store.set_setting(CURRENT_ROOM, normalise_room(room))
