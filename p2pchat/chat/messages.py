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
    """

    entry: Entry
    text: str
    direct: bool
    recipient: Optional[str] = None


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
