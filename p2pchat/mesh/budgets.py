# -*- test-case-name: tests.unit.test_peer -*-
"""
A link's budgets: how many C{entry} frames a peer may send per second
before this node stops reading its link for a while (L{EntryBudget}), how
many pings and pongs before it closes the link, and how many bytes of
small frames may wait for a peer that does not read.

Per link, live entries (pushed as they are posted) and sync entries
(streamed to catch a node up) have separate budgets, so catch-up stays
fast while a member flooding new posts is held to a chat-like rate.  The
catch-up budget is only for answers to what this node asked for (see
L{EntryBudget.expect_sync}); anything else is charged as live.
"""

from typing import Optional

from twisted.internet.interfaces import IReactorTime

from p2pchat.ratelimit import TokenBucket

LIVE_ENTRIES_PER_S = 1_000
LIVE_ENTRY_BURST = 5_000
SYNC_ENTRIES_PER_S = 10_000
SYNC_ENTRY_BURST = 20_000
SYNC_WINDOW_S = 60.0
# ping and pong, together, per link: a keep-alive is one every 5 s.
LINK_FRAMES_PER_S = 2.0
LINK_FRAME_BURST = 20
# Bytes of frames written outside the link's producer (announcements,
# gossip, pongs) while its transport is full: a peer that reads nothing for
# that long is closed instead of making this node buffer the network's
# chatter for it without bound.  Above the largest honest burst: gossip
# waits for a paused link and sends at most membership.FLUSH_ROWS_PER_TICK
# (500) rows of at most about 730 bytes per tick, about 365 KB, some of it
# written after the transport paused; the rest is announcements by id.
MAX_UNREAD_BYTES = 2 * 1024 * 1024


class EntryBudget:
    """
    The live and catch-up budgets of one link, and its catch-up window.
    """

    def __init__(
        self,
        clock: IReactorTime,
        live: Optional[TokenBucket] = None,
        sync: Optional[TokenBucket] = None,
    ):
        """
        @param live: the live bucket; C{None}: live entries are not limited.
        @param sync: the catch-up bucket; C{None}: not limited.
        """
        self._clock = clock
        self._buckets = {False: live, True: sync}
        self._sync_until = float("-inf")

    @classmethod
    def standard(cls, clock: IReactorTime) -> "EntryBudget":
        """
        @return: the budgets of a link this node runs: L{LIVE_ENTRIES_PER_S}
            (burst L{LIVE_ENTRY_BURST}) and L{SYNC_ENTRIES_PER_S} (burst
            L{SYNC_ENTRY_BURST}).
        """
        return cls(
            clock,
            TokenBucket(LIVE_ENTRIES_PER_S, LIVE_ENTRY_BURST, clock),
            TokenBucket(SYNC_ENTRIES_PER_S, SYNC_ENTRY_BURST, clock),
        )

    def charge(self, sync: bool) -> float:
        """
        Charge one entry, marked C{sync} or not by the peer.

        @return: how long to stop reading the link (0: go on).
        """
        bucket = self._buckets[sync and self.catching_up]
        return 0.0 if bucket is None else bucket.charge(1)

    @property
    def catching_up(self) -> bool:
        """
        Whether entries the peer marks C{sync} now answer something this
        node asked for (see L{expect_sync}).
        """
        return self._clock.seconds() < self._sync_until

    def expect_sync(self, window_s: float = SYNC_WINDOW_S) -> None:
        """
        This node just asked the peer for entries: for the next
        C{window_s}, entries it marks C{sync} are charged to the catch-up
        budget instead of the live one.
        """
        self._sync_until = self._clock.seconds() + window_s
