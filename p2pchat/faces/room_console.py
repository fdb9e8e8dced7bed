# -*- test-case-name: tests.unit.test_console_rooms -*-
"""
The console's rooms: parsing the room commands (L{parse_room_words}, pure)
and running them (L{RoomCommands}, mixed into
L{p2pchat.faces.console.ConsoleProtocol}); through the chat API only.

Every console session has its own current room (where typed lines go),
starting in the one last chosen (L{p2pchat.chat.Rooms.current}).
"""

import re
from typing import Optional, Tuple

from p2pchat.chat import (
    LOBBY,
    RoomNameError,
    SearchRefused,
    normalise_room,
    printable,
    short_id,
)
from p2pchat.faces.catchup import CatchUpGate
from p2pchat.faces.words import DEFAULT_HISTORY

MAX_HISTORY = 1000
# ASCII digits only: str.isdigit() and int() also accept other scripts'
# digits and superscripts, some of which int() then refuses.  Leading zeros
# are skipped and at most 9 digits kept, so int() never sees a huge number.
_NUMBER = re.compile(r"0*([0-9]{1,9})")



class RoomCommandError(ValueError):
    """
    A room command line is not valid; C{str(error)} says why.
    """


def _room(text: str) -> str:
    try:
        return normalise_room(text)
    except RoomNameError as e:
        raise RoomCommandError(f"{printable(text[:60])}: {e}; try /help") from None


def _split_room(rest: str) -> Tuple[Optional[str], str]:
    """
    @return: the room that C{rest} starts with (or C{None}) and the rest.
    """
    if not rest.startswith("#"):
        return None, rest
    first, _, tail = rest.partition(" ")
    return _room(first), tail.strip()


def parse_room_words(word: str, rest: str) -> Optional[Tuple[str, tuple]]:
    """
    Parse a room command: its word (lower case, without C{/}) and the rest
    of its line (stripped).

    @return: C{(command name, arguments)}, a room C{None} meaning the
        session's current room; C{None} if C{word} is not a room command.
    @raise RoomCommandError: for a bad room name or a missing argument.
    """
    if word == "rooms":
        return ("rooms", ())
    if word in ("join", "switch", "room"):
        if not rest or " " in rest:
            raise RoomCommandError(f"/{word} needs one #ROOM; try /help")
        return ("join" if word == "join" else "switch", (_room(rest),))
    if word in ("part", "names"):
        room, tail = _split_room(rest)
        if tail:
            hint = "" if " " in tail or tail.startswith("#") else " (room names start with #)"
            raise RoomCommandError(f"/{word} takes at most a #ROOM{hint}; try /help")
        return (word, (room,))
    if word == "topic":
        return ("topic",) + (_split_room(rest),)
    if word == "history":
        room, tail = _split_room(rest)
        if not tail:
            return ("history", (room, DEFAULT_HISTORY))
        number = _NUMBER.fullmatch(tail)
        if number is None or not 1 <= int(number.group(1)) <= MAX_HISTORY:
            raise RoomCommandError(f"/history takes a number 1-{MAX_HISTORY}; try /help")
        return ("history", (room, int(number.group(1))))
    if word == "search":
        room, tail = _split_room(rest)
        if not tail:
            raise RoomCommandError("/search needs a TEXT; try /help")
        return ("search", (room, tail))
    return None


class RoomCommands:
    """
    The room commands of a console session, and how it shows rooms.
    Mixed into L{p2pchat.faces.console.ConsoleProtocol}, which provides
    C{_chat} (the L{p2pchat.chat.ChatService}), C{say} and C{format}.

    @ivar room: this session's current room.
    """

    room = LOBBY
    _gate = None

    def attach_rooms(self) -> None:
        """
        Start in the current room last chosen (say which, unless #lobby),
        and say per joined room how many messages arrived since it was
        last read (if any).  Messages that catch the node up, more than a
        few a second, are counted, then summed up in one line per room when
        the catch-up ends.
        """
        self._gate = CatchUpGate(
            self.clock, self.say_message, self.say,
            busy=lambda: self._chat.catch_up.showing, live_always=True,
        )
        rooms = self._chat.rooms
        self.room = rooms.current()
        for room, count in rooms.unread().items():
            if count:
                self.say(f"{room}: {count}{'+' if count >= 9999 else ''} new")
        if self.room != LOBBY:
            self.say(f"lines you type go to {self.room}")

    def detach_rooms(self) -> None:
        """
        The session ends: what it showed of its rooms counts as read.
        """
        for room in self._chat.rooms.joined():
            self._chat.rooms.mark_read(room)
        if self._gate is not None:
            self._gate.stop()

    def counted(self, message) -> bool:
        """
        @return: whether C{message} arrived to catch the node up: it goes
            through the gate (printed, or counted for its room's summary
            line when many come at once).
        """
        if not message.catch_up or self._gate is None:
            return False
        self._gate.arrived(message)
        return True

    def say_message(self, message) -> None:
        self.say(self.format(message))

    def progress(self, text: str) -> None:
        """
        The catch-up progress line (every few seconds while it runs).
        """
        self.say(f"*** {text}")

    def do_say(self, text: str) -> None:
        self._chat.rooms.post(self.room, text)

    def do_join(self, room: str) -> None:
        rooms = self._chat.rooms
        rooms.join(room)
        self.do_switch(room)
        topic = rooms.topic(room)
        if topic:
            self.say(f"topic of {room}: {printable(topic)}")

    def do_switch(self, room: str) -> None:
        if room not in self._chat.rooms.joined():
            self.say(f"error: you are not in {room}; /join it first")
            return
        self.room = room
        self._chat.rooms.set_current(room)
        self.say(f"lines you type now go to {room}")

    def do_part(self, room: Optional[str]) -> None:
        room = room or self.room
        self._chat.rooms.part(room)
        self.say(f"you left {room}")
        if room == self.room:
            self.room = LOBBY
            self.say(f"lines you type now go to {LOBBY}")

    def do_rooms(self) -> None:
        for info in self._chat.rooms.list():
            mark = "*" if info.mine else " "
            topic = f"  topic: {printable(info.topic)}" if info.topic else ""
            self.say(f"{mark} {info.name}  members {info.members}  "
                     f"messages {info.messages}{topic}")

    def do_topic(self, room: Optional[str], text: str) -> None:
        room = room or self.room
        if text:
            self._chat.rooms.set_topic(room, text)
            return
        topic = self._chat.rooms.topic(room)
        self.say(f"topic of {room}: {printable(topic)}" if topic else f"{room} has no topic")

    def do_names(self, room: Optional[str]) -> None:
        room = room or self.room
        members = self._chat.rooms.names(room)
        if not members:
            self.say(f"{room}: nobody has joined it (/rooms lists the rooms known here)")
            return
        self.say(f"{room}: {len(members)} member(s)")
        for member in members:
            self.say(f"{printable(member.name)} ({short_id(member.node_id)}) {member.state}")

    def do_history(self, room: Optional[str], limit: int) -> None:
        room = room or self.room
        messages = self._chat.rooms.history(room, limit)
        if not messages:
            self.say("no messages yet")
        for message in messages:
            self.say(self.format(message))
        self._chat.rooms.mark_read(room)

    def do_search(self, room: Optional[str], text: str) -> None:
        try:
            messages = self._chat.rooms.search(room or self.room, text)
        except SearchRefused as e:
            self.say(f"error: {e}")
            return
        for message in messages:
            self.say(self.format(message))
        self.say(f"{len(messages)} matching message(s)")
