"""
The chat API: the one object faces call.

A L{ChatService} acts for one local I{author} (an identity that signs
entries, with a display name), which is not assumed to be the node's mesh
identity: it writes through the L{Feed}, reads the store through it, and
learns of committed entries as an L{IFeedListener}, telling its subscribers
(L{IChatListener}) what its author may see.
"""

import time
from dataclasses import dataclass, replace
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

import p2pchat
from p2pchat.chat.catchup import CATCH_UP_AGE_S, IDLE, CatchUpNews
from p2pchat.chat.direct import CryptoError, open_box, seal
from p2pchat.chat.messages import Message, Peer, UnknownPeer
from p2pchat.chat.names import Names
from p2pchat.chat.rooms import Rooms
from p2pchat.config import PeerAddress
from p2pchat.log.entry import Entry, InvalidEntry
from p2pchat.log.feed import Feed, IFeedListener
from p2pchat.log.identity import Identity, short_id
from p2pchat.log.rooms import LOBBY, ROOM_KINDS
from p2pchat.mesh.links import Links
from p2pchat.mesh.member_words import change_words
from p2pchat.mesh.wire import PROTOCOL_VERSION
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import printable

# Membership notices shown at once, then one a second (a flood of gossiped
# members would otherwise fill every console).
NOTICE_BURST = 50
NOTICES_PER_S = 1.0


@dataclass
class LocalAuthor:
    """
    Someone using this node: the identity that signs their entries and
    the name they go by.
    """

    identity: Identity
    name: str

    @property
    def node_id(self) -> str:
        return self.identity.node_id


@implementer(IFeedListener)
class ChatService:
    """
    Chat for one local author.

    @ivar author: the L{LocalAuthor}.
    @ivar clock: the node's clock (faces pace their input with it).
    @ivar now: the node's wall clock: seconds since the epoch (faces tell
        today's messages from older ones with it).
    """

    log = Logger()

    def __init__(
        self,
        author: LocalAuthor,
        feed: Feed,
        links: Links,
        names: Names,
        clock: IReactorTime,
        facts: Callable[[], Dict[str, object]] = dict,
        connect: Optional[Callable[[PeerAddress], bool]] = None,
        disconnect: Optional[Callable[[PeerAddress], bool]] = None,
        wall_clock: Callable[[], float] = time.time,
        progress: Callable[[], Dict[str, object]] = lambda: dict(IDLE),
        converged: Optional[Callable[[], object]] = None,
        progress_level: Optional[Callable[[], Tuple[int, bool]]] = None,
    ):
        """
        @param facts: the node's status beyond the author's (port, counts,
            timings), in display order.
        @param progress: the log's catch-up snapshot (see L{CatchUpNews}).
        @param progress_level: its C{(known_missing, catching_up)}, cheap.
        @param converged: gives the node's
            L{p2pchat.chat.convergence.Convergence} (C{/converged}).
        @param connect: dials an address until the node has links
            (C{False} if it is already linked or being dialled).
        @param disconnect: stops dialling an address and closes its links
            (C{False} if there was nothing to stop).
        @param wall_clock: the node's wall clock (entries' times).
        """
        self.author = author
        self.clock = clock
        self._feed = feed
        self._links = links
        self.names = names
        self._facts = facts
        self._connect = connect
        self._disconnect = disconnect
        self.now = wall_clock
        self._listeners: List[object] = []
        self._blocked = set(feed.store.blocked())
        self._notices = TokenBucket(NOTICES_PER_S, NOTICE_BURST, clock)
        self._unshown = 0
        #: The author's rooms (L{Rooms}): join, part, list, topic, names,
        #: post, history, search, unread, the current room.
        self.rooms = Rooms(self, feed)
        #: How far a catch-up is, and its progress line (L{CatchUpNews}).
        self.catch_up = CatchUpNews(clock, progress, lambda: self._listeners, progress_level)
        self._converged = converged

    @property
    def node_id(self) -> str:
        """
        The local author's id.
        """
        return self.author.node_id

    @property
    def name(self) -> str:
        """
        The local author's name.
        """
        return self.author.name

    def subscribe(self, listener) -> None:
        """
        Tell C{listener} (an L{IChatListener}) about new messages and news.
        """
        if listener not in self._listeners:
            self._listeners.append(listener)

    def unsubscribe(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def member_changed(self, member, old_state: Optional[str]) -> None:
        """
        Tell every subscriber when a member joins (is first seen alive),
        seems down, is down, is back or left.  Beyond a burst of
        L{NOTICE_BURST} (a flood of gossiped members), notices are counted
        instead and the count goes with the next one shown.
        """
        words = change_words(old_state, member.state)
        if words is None:
            return
        if not self._notices.take():
            self._unshown += 1
            return
        text = f"{printable(member.name)} ({short_id(member.node_id)}) {words}"
        if self._unshown:
            text += f" (and {self._unshown} more changes not shown; /peers lists everyone)"
            self._unshown = 0
        self._notify(text)

    def _notify(self, text: str) -> None:
        for listener in list(self._listeners):
            listener.notice(text)

    # Writing

    def post(self, text: str) -> Entry:
        """
        Broadcast C{text} to everyone.

        @raise InvalidEntry: if the text is empty or too long.
        """
        return self._feed.author(self.author.identity, "chat", {"name": self.name, "text": text})

    def direct(self, who: str, text: str) -> Entry:
        """
        Send C{text} to C{who} only (a name, short id or id), sealed so
        relays store only ciphertext.

        @raise UnknownPeer: if no known peer matches.
        @raise AmbiguousPeer: if several known peers have that name.
        @raise InvalidEntry: if the text is empty or too long.
        """
        target = self.resolve(who)
        body = seal(self.author.identity, self.name, target, text)
        return self._feed.author(self.author.identity, "dm", body)

    def certify(self, body: dict) -> Entry:
        """
        Post the author's name certificate (a C{cert} entry).
        """
        return self._feed.author(self.author.identity, "cert", body)

    # Names

    def resolve(self, who: str) -> str:
        """
        @return: the id of C{who} (see L{Names.resolve}).
        """
        return self.names.resolve(who)

    def name_of(self, node_id: str) -> Optional[str]:
        """
        @return: the best name known for C{node_id}, or C{None}.
        """
        return self.names.name_of(node_id)

    def display_name(self, entry: Entry) -> str:
        """
        @return: the name to show for the author of C{entry}.
        """
        if entry.author == self.node_id and self.names.attestations is not None:
            return self.name
        return self.names.display_name(entry)

    def set_name(self, name: str) -> None:
        """
        Change the author's name for new entries and, when the author is
        the node's own identity, the node's for new links and membership
        gossip.

        @raise InvalidEntry: on a TLS network (the name is the certificate's).
        """
        if self.names.attestations is not None and name != self.name:
            raise InvalidEntry(
                "on a TLS network your name is the one in your certificate; not changed"
            )
        old, self.author.name = self.author.name, name
        if old != name:
            self._notify(f"{printable(old)} is now known as {printable(name)}")
        if self.node_id == self._links.membership.node_id:
            self._links.membership.set_name(name)

    def set_hidden(self, hidden: bool) -> None:
        """
        Stop (or start again) advertising this node in membership gossip.
        It still reads and posts.
        """
        self._links.membership.set_hidden(hidden)

    def peers(self) -> List[Peer]:
        """
        @return: every known member, sorted by name then id.
        """
        now = self.clock.seconds()
        members = sorted(self._links.membership.members(), key=lambda m: (m.name, m.node_id))
        return [
            Peer(m.name, m.node_id, m.address, m.state, m.linked, max(0, int(now - m.last_heard)))
            for m in members
        ]

    members = peers

    def connect(self, address: PeerAddress) -> bool:
        """
        Open a link to C{address}, redialled with back-off until the node
        has other links.

        @return: C{False} if C{address} is already linked or being dialled.
        """
        if self._connect is None:
            raise RuntimeError("this node cannot open links")
        return self._connect(address) is not False

    def disconnect(self, address: PeerAddress) -> bool:
        """
        Stop dialling C{address} and close the links at it.

        @return: C{False} if it was neither dialled nor linked.
        """
        if self._disconnect is None:
            raise RuntimeError("this node cannot close links")
        return self._disconnect(address) is not False

    # Reading

    def message(self, entry: Entry) -> Optional[Message]:
        """
        @return: how the author sees C{entry}, or C{None} if it is blocked,
            a certificate, or a direct message for someone else (or one
            that does not open).
        """
        if entry.author in self._blocked or entry.kind == "cert":
            return None
        if entry.kind == "chat":
            return Message(entry, entry.body["text"], False, room=entry.body.get("room", LOBBY))
        if entry.kind in ROOM_KINDS:
            return Message(entry, entry.body.get("topic", ""), False, room=entry.body["room"],
                           event=entry.kind[len("room."):])
        try:
            opened = open_box(self.author.identity, entry)
        except (CryptoError, ValueError):
            self.log.warn(
                "cannot open direct message {id} from {author}",
                id=entry.id[:12], author=short_id(entry.author),
            )
            return None
        if opened is None:
            return None
        text, recipient = opened
        return Message(entry, text, direct=True, recipient=recipient)

    def history(self, limit: int) -> List[Message]:
        """
        @return: the last C{limit} messages the author can see, oldest
            first, in display order (Lamport time, then author id).
        """
        store = self._feed.store
        entries = self._feed.read(store.history, limit, self.node_id, self._blocked)
        return [m for m in map(self.message, entries) if m is not None]

    def search(self, text: str, limit: int = 50) -> List[Message]:
        """
        @return: broadcast messages containing every word of C{text}.
        @raise p2pchat.log.store.core.SearchRefused: for a search too costly.
        """
        found = self._feed.read(self._feed.store.search, text, limit)
        return [m for m in map(self.message, found) if m is not None]

    def status(self) -> Dict[str, object]:
        """
        @return: the author's and the node's status as ordered key/value
            pairs (what is queued is committed first).
        """
        status = {
            "id": self.node_id,
            "name": self.name,
            "version": p2pchat.__version__,
            "protocol": PROTOCOL_VERSION,
        }
        status.update(self._facts())
        return status

    def converged(self):
        """
        @return: how many members hold exactly what this node holds (a
            L{p2pchat.chat.convergence.Convergence}).
        """
        if self._converged is None:
            raise RuntimeError("this node does not know its members' digests")
        return self._converged()

    # The block list

    def block(self, who: str) -> str:
        """
        Stop showing the messages of C{who} (a name or id) here.  They are
        still stored and relayed, so other nodes converge.

        @return: the blocked id.
        """
        node_id = self.resolve(who)
        if node_id == self.node_id:
            raise UnknownPeer("you cannot block yourself")
        self._feed.store.block(node_id)
        self._blocked.add(node_id)
        return node_id

    def unblock(self, who: str) -> str:
        """
        Show the messages of C{who} again.

        @return: the unblocked id.
        """
        node_id = self.resolve(who)
        self._feed.store.unblock(node_id)
        self._blocked.discard(node_id)
        return node_id

    def blocked(self) -> List[str]:
        """
        @return: the blocked ids, sorted.
        """
        return sorted(self._blocked)

    # The feed listener interface

    def committed(self, entry: Entry, source, live: bool) -> None:
        if entry.author != self.node_id:
            self._renamed(entry, live)
            self.names.heard(entry)
        message = self.message(entry)
        if message is not None and not live and (
                self.catch_up.big or entry.ts < (self.now() - CATCH_UP_AGE_S) * 1000):
            message = replace(message, catch_up=True)
        if message is not None and self.rooms.visible(message):
            for listener in list(self._listeners):
                listener.message(message)

    def _renamed(self, entry: Entry, live: bool) -> None:
        """
        Tell the subscribers when a live entry of an author shows a new
        name (its signed entries carry it); not on a TLS network, where
        names are the certificates'.
        """
        known = self.names.authors.get(entry.author)
        if (
            live
            and known is not None
            and self.names.attestations is None
            and entry.lamport >= known[1]
            and entry.name != known[0]
            and entry.author not in self._blocked
        ):
            self._notify(f"{printable(known[0])} is now known as {printable(entry.name)}")

    def duplicate(self, source, live: bool) -> None:
        """
        Nothing new to show.
        """

    def gap(self, source) -> None:
        """
        Replication's business.
        """

    def failed(self, count: int, error) -> None:
        for listener in list(self._listeners):
            listener.alert(f"could not store {count} message(s), not sent: {error}")
