"""
The parts of replication that are not the L{p2pchat.log.replication.Replicator}
itself: its configuration, its output interface, the rule that compares a summary with what
this node holds (L{wanted}), and the per-link state with its budgets.

Each budget is a token bucket per link, derived from the most an honest
node sends (see each constant); the replicator's module docstring says
what happens beyond each.
"""

from dataclasses import dataclass
from typing import List, Optional, Set, Tuple

from zope.interface import Interface

from p2pchat.mesh import wire
from p2pchat.ratelimit import TokenBucket

MAX_IDS_PER_FRAME = wire.MAX_IDS_PER_FRAME
PAGE_AUTHORS = wire.MAX_AUTHORS_PER_PAGE
MAX_MISSING = 10_000
# A link's share of MAX_MISSING is MAX_MISSING // links, at most this and
# at least MIN_MISSING_PER_LINK: one link cannot crowd out the others.
MAX_MISSING_PER_LINK = 2_000
MIN_MISSING_PER_LINK = 100
MAX_GRAFTS = 3
#: Slices of the author space a summary round asks one by one
#: (L{p2pchat.log.sweep}).
DEFAULT_SLICES = 16
FRAME_TYPES = frozenset(["summary", "more", "ihave", "graft", "prune"])
#: What L{p2pchat.log.replication.Replicator.counts} counts: ids grafted,
#: prunes sent, summary rounds a gap or an C{ihave sync} started, and
#: announced entries that arrived without a graft (late eager copies).
COUNTS = ("grafted", "prunes", "gap_rounds", "late_arrivals")

# Budgets per link: (tokens per second, burst).
# Summary pages: a round of 100,000 authors is 200 pages, at most one
# every 30 s plus peer-triggered ones; 50/s with a burst of 500 (a whole
# 250,000-author round) is never reached by an honest node.  Over it,
# "more" is delayed, nothing is dropped.
SUMMARY_PAGES_PER_S = (50.0, 500)
# ihave ids: an honest node announces each entry it commits at most once
# per link; its commits are bounded by its links' live budgets
# (p2pchat.mesh.budgets.LIVE_ENTRIES_PER_S = 1,000/s, 10 links at full rate).
IHAVE_IDS_PER_S = (10_000.0, 50_000)
# ihave sync: one frame per tick (announce_interval_s = 0.2 s) at most.
SYNC_IHAVES_PER_S = (10.0, 20)
# graft ids: an honest peer grafts at most its share of missing ids
# (MAX_MISSING_PER_LINK) once, then again at most every regraft_s (1 s),
# up to MAX_GRAFTS times.
GRAFT_IDS_PER_S = (4_000.0, 8_000)
# prune: one per duplicate that arrives while the link is eager, and the
# link then stays lazy until a graft or a pushed first copy: a few per
# second at most.
PRUNES_PER_S = (10.0, 50)
# Summary rounds a peer can make this node run (ihave sync with an
# unknown id, an entry whose predecessor is missing): deferred beyond it.
PEER_ROUNDS_PER_S = (0.2, 2)


@dataclass(frozen=True)
class ReplicationConfig:
    """
    Timing of replication.

    @ivar anti_entropy_interval_s: how often a summary round runs with one
        link.
    @ivar announce_interval_s: how often batched C{ihave}s are sent (the
        node calls L{Replicator.tick} this often).
    @ivar graft_timeout_s: how long an announced entry may take to arrive
        before it is requested, at least.
    @ivar max_graft_timeout_s: at most (however late copies arrive).
    @ivar regraft_s: how long, at least, a grafted entry may take to
        arrive (it is streamed) before it is grafted from the next link.
    @ivar sync_check_s: how long, at least, ids announced as catch-up may
        take to arrive before a summary round pulls what is lacking.
    @ivar gap_summary_interval_s: at most one gap-triggered summary round
        per link this often.
    @ivar summary_slices: the slices of the author space a summary round
        asks one by one (L{p2pchat.log.sweep}); 1 asks it whole.
    @ivar confirm_wait_s: the longest a round waits for the entries of
        the slices other links answered to be committed before it asks
        its own link about those slices.
    """

    anti_entropy_interval_s: float = 30.0
    announce_interval_s: float = 0.2
    graft_timeout_s: float = 0.05
    max_graft_timeout_s: float = 3.0
    regraft_s: float = 1.0
    sync_check_s: float = 1.0
    gap_summary_interval_s: float = 1.0
    summary_slices: int = DEFAULT_SLICES
    confirm_wait_s: float = 10.0


def wanted(theirs, contiguous: int, head: int) -> Tuple[Optional[tuple], Optional[int]]:
    """
    What to send an asker whose summary says C{theirs} for a feed of
    which this node holds seqs 1..C{contiguous} and up to C{head}.

    @param theirs: C{None} (the asker holds nothing of it), a seq C{c}
        (it holds 1..c and nothing above) or C{[c, h]} (it holds 1..c
        and h, with c + 1 missing).
    @return: C{(hole, cursor)}: C{hole} is C{(c + 1, h - 1)} or C{None}:
        send the run of held entries that starts I{exactly} at seq c + 1,
        up to h - 1, stopping at this node's first gap (nothing if it
        lacks c + 1 too); then every held entry after seq C{cursor}
        (C{None}: none).  Whatever is sent for a hole raises the asker's
        contiguous seq, so a hole both sides lack costs nothing, and no
        entry is sent twice for one hole.
    """
    if theirs is None:
        return None, 0
    if isinstance(theirs, int):
        return None, (theirs if head > theirs else None)
    c, h = theirs
    hole = (c + 1, h - 1) if c + 1 <= min(head, h - 1) else None
    return hole, (h if head > h else None)


class IReplicationOutput(Interface):
    """
    What a L{Replicator} asks its node to do.
    """

    def send(link, frame: dict) -> None:
        """
        Send C{frame} on C{link} (a small frame).
        """

    def when_ready(link, action) -> None:
        """
        Call C{action()} from C{link}'s producer when it is not paused.
        """

    def answer(link, after, upto, vv: dict, done) -> None:
        """
        In C{link}'s producer, walk this node's feeds with authors in
        (C{after}, C{upto}] (C{upto} C{None}: to the end), send what
        L{wanted} says for each given the asker's C{vv}, then call
        C{done()}.
        """

    def graft(link, entry_ids: List[str]) -> int:
        """
        Send the held entries with these ids on C{link}, in its producer.

        @return: how many ids were dropped (too many pending).
        """

    def solicit(link) -> None:
        """
        This node is asking C{link} for entries (a summary page or a
        graft): what it sends back is catch-up, not live traffic.
        """

    def settle(link) -> None:
        """
        This node's summary round with C{link} is over: stop treating what
        it sends as catch-up shortly.
        """

    def holds(entry_id: str) -> bool:
        """
        Whether the node holds (or has queued) the entry with this id.
        """

    def feeds_page(after: Optional[str], limit: int) -> List[tuple]:
        """
        C{(author, contiguous, head)} of at most C{limit} held feeds with
        authors greater than C{after}, ascending.
        """

    def pending() -> int:
        """
        How many entries received from links are not yet committed (or
        refused): being verified or queued.
        """


class LinkState:
    """
    What the replicator keeps per link.
    """

    def __init__(self, clock):
        self.eager = True
        self.announce: List[str] = []
        self.sync_announce: List[str] = []
        self.summary_due = False
        # Ids of an "ihave sync" not held, checked again at sync_check_at.
        self.sync_check: List[str] = []
        self.sync_check_at = 0.0
        self.last_gap_summary = float("-inf")
        # This node's own summary round on this link (see p2pchat.log.sweep):
        # the slices still to ask it, the slice being asked (shared or
        # not), the page cursor in it, and whether the page sent closes it.
        self.round_active = False
        self.todo: Set[int] = set()
        self.slice: Optional[int] = None
        self.shared = False
        self.round_after: Optional[str] = None
        self.page_unanswered = False
        self.slice_closed = False
        self.waiting_since: Optional[float] = None
        self.streamed_at = 0.0
        self.rerun = False
        # A page of the peer's round being answered (no "more" sent yet).
        self.answering = False
        self.missing = 0
        self.buckets = {
            name: TokenBucket(rate, burst, clock)
            for name, (rate, burst) in [
                ("summary", SUMMARY_PAGES_PER_S), ("ihave", IHAVE_IDS_PER_S),
                ("sync", SYNC_IHAVES_PER_S), ("graft", GRAFT_IDS_PER_S),
                ("prune", PRUNES_PER_S), ("rounds", PEER_ROUNDS_PER_S),
            ]
        }
