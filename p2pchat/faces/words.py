"""
What the line console writes, in words: the command table of C{/help},
message lines with their time (and date when not today), and how a paste
becomes messages.  Pure functions; the console (L{p2pchat.faces.console})
does the I/O.
"""

import time
from typing import Callable, List, Optional

from p2pchat.chat import MAX_TEXT_BYTES, ChatService, Message, printable, short_id

DEFAULT_HISTORY = 20

# (usage, what it does): /help prints them in two aligned columns.
COMMANDS = (
    ("TEXT", "send TEXT to the current room (#lobby: everyone)"),
    ("/msg NAME TEXT", "send TEXT to one peer only (NAME may be a short id)"),
    ("/peers", "list known peers"),
    ("/connect HOST:PORT", "open a link to a peer (redialled until the node has links)"),
    ("/disconnect HOST:PORT", "stop dialling HOST:PORT and close its link"),
    ("/join #ROOM", "join (or create) a room; lines you type now go there"),
    ("/part [#ROOM]", "leave a room (default: the current one); its history stays"),
    ("/rooms", "list every room: members, messages, topic; * marks yours"),
    ("/topic [#ROOM] [TEXT]", "show, or set, a room's topic"),
    ("/names [#ROOM]", "list a room's members and their state"),
    ("/switch #ROOM", "send the lines you type to ROOM (also /room #ROOM)"),
    ("/history [#ROOM] [N]", f"show the last N messages of a room (default {DEFAULT_HISTORY})"),
    ("/search [#ROOM] TEXT", "show a room's messages containing every word of TEXT"),
    ("/status", "show this node's id, name, port, messages, peers, digest"),
    ("/converged", "how many members hold exactly this node's messages (their signed digests)"),
    ("/block NAME", "stop showing NAME's messages here (still relayed)"),
    ("/unblock NAME", "show NAME's messages again"),
    ("/blocked", "list who you blocked"),
    ("/hide", "stop advertising this node in membership gossip"),
    ("/show", "advertise it again"),
    ("/nick NAME", "change your display name"),
    ("/paste on|off", "join a paste of many lines into one message (on), or not"),
    ("/help", "show this help"),
    ("/quit", "close this console (the node keeps running)"),
)
# More text lines than this in one read are a paste: sent as one
# multi-line message (or as few as the size limit allows).
PASTE_LINES = 5


def help_lines() -> List[str]:
    """
    @return: the lines of C{/help}, its columns aligned.
    """
    width = max(len(usage) for usage, _ in COMMANDS)
    return (
        ["Commands:"]
        + [f"  {usage.ljust(width)}  {what}" for usage, what in COMMANDS]
        + [
            "Lines starting with // send a message that starts with /.",
            f"On the screen and in telnet, more than {PASTE_LINES} pasted lines are sent as one"
            " multi-line message (/paste off: one message a line).",
        ]
    )


def format_clock(
    timestamp_ms: int, localtime: Callable = time.localtime, now: Optional[float] = None
) -> str:
    """
    @param now: the wall-clock time now, in seconds (C{time.time()} if not
        given).
    @return: C{HH:MM:SS} of a wall-clock time in milliseconds, or
        C{YYYY-MM-DD HH:MM:SS} when that is not today (local time).
    """
    when = localtime(timestamp_ms / 1000)
    today = localtime(time.time() if now is None else now)
    if when[:3] == today[:3]:
        return time.strftime("%H:%M:%S", when)
    return time.strftime("%Y-%m-%d %H:%M:%S", when)


def format_message(
    chat: ChatService, message: Message, now: float, current_room: Optional[str] = None
) -> str:
    """
    @param now: the wall-clock time now (seconds), to tell today apart.
    @param current_room: the console's current room: a message in another
        room is shown with its room.
    @return: how a console prints C{message}: C{[time] <name> text} (with
        the room, C{[time] #rust <name> text}, when it is not the current
        one), C{[time] *** name joined #rust} for a room event, or
        C{[time] *name* text} for a direct message; the lines of a
        multi-line message after the first on lines of their own, marked
        as its continuation; everything escaped.
    """
    entry = message.entry
    stamp = format_clock(entry.ts, now=now)
    first, *more = message.text.split("\n")
    text = "".join([printable(first)] + [f"\r\n    | {printable(line)}" for line in more])
    name = chat.display_name(entry)
    if not message.direct:
        return _room_line(message, stamp, name, text, current_room)
    if entry.author == chat.node_id:
        if message.recipient == chat.node_id:
            return f"[{stamp}] *{name}* (to yourself) {text}"
        to = chat.name_of(message.recipient) or short_id(message.recipient)
        return f"[{stamp}] *{name}* (to {to}) {text}"
    return f"[{stamp}] *{name}* {text}"


def _room_line(
    message: Message, stamp: str, name: str, text: str, current_room: Optional[str]
) -> str:
    room = message.room
    if message.event == "join":
        return f"[{stamp}] *** {name} joined {room}"
    if message.event == "part":
        return f"[{stamp}] *** {name} left {room}"
    if message.event == "topic":
        return f"[{stamp}] *** {name} set the topic of {room}: {text}"
    if room == current_room:
        return f"[{stamp}] <{name}> {text}"
    return f"[{stamp}] {room} <{name}> {text}"


def paste_messages(lines: List[str]) -> List[str]:
    """
    @return: C{lines} joined by newlines into as few texts as fit the
        size limit (each line fits alone: the parser refused longer ones).
    """
    messages: List[str] = []
    current: List[str] = []
    size = 0
    for line in lines:
        length = len(line.encode("utf-8"))
        if current and size + 1 + length > MAX_TEXT_BYTES:
            messages.append("\n".join(current))
            current, size = [], 0
        size += length + (1 if current else 0)
        current.append(line)
    messages.append("\n".join(current))
    return messages


