"""
What the chat API hands its faces: messages, peers, errors, and the
listener interface for news.
"""

from dataclasses import dataclass
from typing import Optional

from zope.interface import Interface

from p2pchat.log.entry import Entry


class UnknownPeer(LookupError):
    """
    No known peer matches a name or id; C{str(error)} says so.
    """


class AmbiguousPeer(LookupError):
    """
    Several known peers match a name; C{str(error)} lists their short ids.
    """


@dataclass(frozen=True)
class Message:
    """
    A log entry as one local author sees it.

    @ivar entry: the entry.
    @ivar text: the plain text (decrypted, for a direct message).
    @ivar direct: whether it is a direct message.
    @ivar recipient: for a direct message, the recipient's id.
    @ivar room: the room it belongs to (C{#lobby} for a message without
        one), C{None} for a direct message.
    @ivar event: C{"message"}, or what a room entry says: C{"join"},
        C{"part"} or C{"topic"} (then C{text} is the new topic).
    @ivar catch_up: whether it arrived to catch this node up (not live)
        and was written a while ago or came with a catch-up worth a
        progress line (L{p2pchat.chat.catchup}): a face may count such
        messages instead of printing each.
    """

    entry: Entry
    text: str
    direct: bool
    recipient: Optional[str] = None
    room: Optional[str] = None
    event: str = "message"
    catch_up: bool = False


@dataclass(frozen=True)
class Peer:
    """
    One member of the mesh as C{/peers} lists it.

    @ivar name: its name (peer-supplied: escape before printing).
    @ivar node_id: its id.
    @ivar address: the address it advertised, or C{None}.
    @ivar state: C{alive}, C{suspect}, C{dead} or C{left}.
    @ivar linked: whether this node has a link to it.
    @ivar heard_s: whole seconds since it was last heard from.
    """

    name: str
    node_id: str
    address: Optional[str]
    state: str
    linked: bool
    heard_s: int


class IChatListener(Interface):
    """
    A face's view of the chat: what L{ChatService.subscribe} reports.

    A listener may also have C{progress(text)}: it is then told the
    catch-up progress line, at most every few seconds while entries are
    known missing (L{p2pchat.chat.catchup}).
    """

    def message(message: Message) -> None:
        """
        A message was just committed and is visible to the local author.
        """

    def notice(text: str) -> None:
        """
        News about the network (a member came, went, failed).
        """

    def alert(text: str) -> None:
        """
        A problem the node ran into (not caused by this face).
        """


@dataclass(frozen=True)
class RoomInfo:
    """
    One room as C{/rooms} lists it.

    @ivar name: its name (C{#lobby}, or C{#} and lower-case letters,
        digits, C{-}, C{_}, C{.}: safe to print).
    @ivar members: how many members it has.
    @ivar messages: how many messages it holds.
    @ivar topic: its topic, C{""} for none (peer-supplied: escape it).
    @ivar mine: whether the local author is in it.
    """

    name: str
    members: int
    messages: int
    topic: str
    mine: bool


@dataclass(frozen=True)
class RoomMember:
    """
    One member of a room as C{/names} lists it.

    @ivar name: its name (peer-supplied: escape it).
    @ivar node_id: its id.
    @ivar state: C{alive}, C{suspect}, C{dead} or C{left} from membership,
        C{unknown} for an author membership has not heard of.
    """

    name: str
    node_id: str
    state: str
