"""
Replication wiring: the L{Replicator} and what it asks of the node.

L{Relay} owns the node's L{Replicator} and is its L{IReplicationOutput}: it
sends on links, runs large replies through each link's producer (an
L{EntryStreamer}) and reads the L{Feed}.  As an L{IFeedListener} it relays
each committed entry: in full on the replicator's eager links (through the
link's producer when its transport is full, see L{EntryStreamer.push};
announced by id past the producer's bound), never on a link whose protocol
version does not know it (L{p2pchat.log.rooms.reaches_link}).  It routes entry and replication
frames from the links to the feed and the replicator.
"""

from typing import Callable, List, Optional

from twisted.internet.interfaces import IReactorTime
from zope.interface import implementer

from p2pchat.log.entry import Entry
from p2pchat.log.feed import Feed, IFeedListener
from p2pchat.log.progress import CatchUpProgress
from p2pchat.log.replication import FRAME_TYPES as REPLICATION_FRAMES
from p2pchat.log.replication import IReplicationOutput, ReplicationConfig, Replicator, wanted
from p2pchat.log.rooms import reaches_link
from p2pchat.log.streaming import EntryStreamer
from p2pchat.mesh import wire
from p2pchat.ops.metrics import Metrics

# How long entries marked sync still count as catch-up after this node's
# summary round with a link ended.
SYNC_GRACE_S = 5.0

#: The frame types a L{Relay} takes from links.
FRAME_TYPES = frozenset(REPLICATION_FRAMES) | {"entry"}


@implementer(IReplicationOutput, IFeedListener)
class Relay:
    """
    Moves committed entries between this node's feed and its links.

    @ivar replicator: decides which links carry which entries.
    """

    def __init__(
        self,
        clock: IReactorTime,
        feed: Feed,
        producer: Callable[[object], Optional[EntryStreamer]],
        metrics: Optional[Metrics] = None,
        config: Optional[ReplicationConfig] = None,
    ):
        """
        @param producer: gives an accepted link's producer (made by
            L{new_producer}), or C{None}.
        """
        self._clock = clock
        self._feed = feed
        self._producer = producer
        self.metrics = metrics or Metrics()
        self.config = config or ReplicationConfig()
        self.replicator = Replicator(clock, self, self.config)
        #: How far a catch-up is (fed by the hooks marked "progress").
        self.progress = CatchUpProgress(clock, feed.store.max_seq)

    def new_producer(self, link) -> EntryStreamer:
        """
        @return: the producer that streams this node's entries on C{link}.
        """
        store = self._feed.store
        return EntryStreamer(
            link, store.entries_after, self._clock, get=store.get,
            feeds_page=store.feeds_page, wanted=wanted, version=link.version,
        )

    # From the links

    def link_up(self, link) -> None:
        self.progress.link_up(link)
        self.replicator.link_up(link)

    def link_down(self, link) -> None:
        self.progress.link_down(link)
        self.replicator.link_down(link)

    def rx_frame(self, link, frame: dict) -> None:
        """
        An entry or replication frame arrived on C{link}.

        @raise wire.FrameError: if a replication frame breaks the protocol.
        """
        if frame["type"] == "entry":
            sync = frame.get("sync", False)
            if sync:
                self.replicator.streamed(link)
            self._feed.rx_entry(frame["entry"], link, live=not sync)
        else:
            self.replicator.rx_frame(link, frame)

    # The feed listener interface

    def committed(self, entry: Entry, source, live: bool) -> None:
        """
        Push a committed entry in full on the replicator's eager links;
        the other links get it announced at the next tick (all of them,
        for an entry that arrived to catch this node up).
        """
        self.progress.committed(entry.author, entry.seq)
        links = self.replicator.entry_added(entry.id, source, live, reaches_link(entry))
        frame = None
        for link in links:
            producer = self._producer(link)
            if producer is not None and (producer.paused or producer.pushing):
                # The link's transport buffer is full (it paused our
                # producer), or earlier pushes wait for it: the producer
                # sends this one after them (read back from the store, so
                # a slow reader cannot make this node buffer without
                # bound).  Past its bound, announce it: the peer grafts it.
                if not producer.push(entry):
                    self.replicator.announce(link, entry.id)
                continue
            frame = frame or wire.entry_frame(entry.to_wire())
            link.send_frame(frame)
            self.metrics.entry_relayed(1)

    def duplicate(self, source, live: bool) -> None:
        if live:
            self.replicator.entry_duplicate(source)

    def gap(self, source) -> None:
        self.replicator.gap_seen(source)

    def failed(self, count: int, error) -> None:
        """
        Nothing was committed, so nothing is relayed.
        """

    # The replication output interface

    def send(self, link, frame: dict) -> None:
        link.send_frame(frame)

    def solicit(self, link) -> None:
        link.expect_sync()

    def settle(self, link) -> None:
        self.progress.round_done(link)
        link.expect_sync(SYNC_GRACE_S)

    def when_ready(self, link, action: Callable[[], None]) -> None:
        producer = self._producer(link)
        if producer is not None:
            producer.when_ready(action)

    def answer(self, link, after, upto, vv: dict, done) -> None:
        self._feed.flush()
        self.progress.claimed(link, vv)
        producer = self._producer(link)
        if producer is not None:
            producer.answer(after, upto, vv, done)

    def graft(self, link, entry_ids: List[str]) -> int:
        self._feed.flush()
        producer = self._producer(link)
        return producer.graft(entry_ids) if producer is not None else 0

    def holds(self, entry_id: str) -> bool:
        return self._feed.holds(entry_id)

    def feeds_page(self, after: Optional[str], limit: int) -> List[tuple]:
        return self._feed.read(self._feed.store.feeds_page, after, limit)

    def pending(self) -> int:
        # The verifier's count (an inline verifier holds none); what it
        # has passed is queued, and feeds_page commits the queue first.
        return getattr(self._feed.verifier, "in_flight", 0)
