"""
Streaming stored entries to a peer with flow control.

An L{EntryStreamer} is the push producer of one peer link: it sends the
entries the replicator asked for (each author's entries after a cursor, in
chain order), a batch per reactor turn, and stops while the transport says
its buffers are full (C{pauseProducing}).  A peer that reads slowly
therefore slows the stream instead of making this node buffer without
bound; at most one batch is in memory at a time.
"""

from typing import Callable, Dict, List

from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer

from p2pchat import wire

DEFAULT_BATCH_ENTRIES = 200


@implementer(IPushProducer)
class EntryStreamer:
    """
    Streams entries to one link.

    @ivar sent: how many entries it has sent.
    """

    def __init__(
        self,
        link,
        entries_after: Callable[[str, int, int], List],
        clock: IReactorTime,
        batch_entries: int = DEFAULT_BATCH_ENTRIES,
    ):
        """
        @param link: the L{p2pchat.peer.PeerProtocol} to send on.
        @param entries_after: the store's C{entries_after(author, seq,
            limit)}.
        @param clock: schedules the next batch.
        """
        self._link = link
        self._entries_after = entries_after
        self._clock = clock
        self._batch_entries = batch_entries
        self._cursors: Dict[str, int] = {}
        self._paused = False
        self._stopped = False
        self._call = None
        self.sent = 0

    def request(self, cursors: Dict[str, int]) -> None:
        """
        Also send each author's entries after its cursor (a lower cursor
        than one already queued wins).
        """
        for author, seq in cursors.items():
            self._cursors[author] = min(seq, self._cursors.get(author, seq))
        self._schedule()

    @property
    def paused(self) -> bool:
        """
        Whether the transport said its buffers are full: the link is
        congested, so nothing more should be pushed on it for now.
        """
        return self._paused

    @property
    def idle(self) -> bool:
        """
        Whether there is nothing left to send.
        """
        return not self._cursors

    def _schedule(self) -> None:
        if self._cursors and not self._paused and not self._stopped and self._call is None:
            self._call = self._clock.callLater(0, self._send_batch)

    def _send_batch(self) -> None:
        self._call = None
        budget = self._batch_entries
        while budget > 0 and self._cursors and not self._paused and not self._stopped:
            author = next(iter(self._cursors))
            requested = budget
            entries = self._entries_after(author, self._cursors[author], requested)
            for entry in entries:
                self._link.send_frame(wire.entry_frame(entry.to_wire(), sync=True))
            self.sent += len(entries)
            budget -= len(entries)
            if len(entries) < requested:
                del self._cursors[author]
            else:
                self._cursors[author] = entries[-1].seq
        self._schedule()

    def pauseProducing(self) -> None:
        self._paused = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self._stopped = True
        self._cursors.clear()
        if self._call is not None:
            self._call.cancel()
            self._call = None
