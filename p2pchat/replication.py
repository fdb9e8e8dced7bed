"""
Log replication: which entries go to which link, and when.

L{Replicator} is sans-IO.  The node tells it what happens (a link came up
or went down, a frame arrived, an entry was committed or arrived again,
time passed) and it answers through an L{IReplicationOutput}: frames to
send, and entries to I{stream} (the I/O side streams them with flow
control, see L{p2pchat.streaming}).

Two mechanisms, as in Plumtree (Leitao et al., "Epidemic Broadcast
Trees"), over the node's few links:

  - B{Live delivery}: a newly committed entry is pushed in full on
    I{eager} links and announced by id (C{ihave}) on I{lazy} ones.  A node
    that receives an entry it already holds asks the sender to C{prune}
    (that link becomes lazy for the sender), so after the first messages
    the eager links form a spanning tree and each node gets about one copy
    per message.  A node that hears C{ihave} for an entry it does not get
    within C{graft_timeout_s} asks for it with C{graft}, which also makes
    that link eager again (the tree heals).
  - B{Anti-entropy}: on every new link and every C{anti_entropy_interval_s}
    the node sends a C{summary}: each author's highest contiguous sequence
    number (a version vector).  The receiver streams, in chain order,
    every entry it holds beyond those numbers.  This catches up nodes that
    were offline or partitioned, fills gaps, and carries direct messages
    to recipients that were away.
"""

import random
from dataclasses import dataclass
from typing import Dict, List, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from p2pchat.identity import is_node_id
from p2pchat.wire import FrameError

MAX_IDS_PER_FRAME = 500
MAX_AUTHORS_PER_SUMMARY_FRAME = 500
MAX_SUMMARY_AUTHORS = 100_000
MAX_MISSING = 10_000
MAX_GRAFTS = 3
FRAME_TYPES = frozenset(["summary", "ihave", "graft", "prune"])


class IReplicationOutput(Interface):
    """
    What a L{Replicator} asks its node to do.
    """

    def send(link, frame: dict) -> None:
        """
        Send C{frame} on C{link}.
        """

    def stream(link, cursors: Dict[str, int]) -> None:
        """
        Send on C{link}, with flow control and in chain order, every held
        entry of each author in C{cursors} whose seq is greater than the
        cursor.
        """

    def solicit(link) -> None:
        """
        This node is asking C{link} for entries (a summary or a graft):
        what it sends back is catch-up, not live traffic.
        """

    def send_entries(link, entry_ids: List[str]) -> None:
        """
        Send the held entries with these ids on C{link}.
        """

    def holds(entry_id: str) -> bool:
        """
        Whether the node holds (or has queued) the entry with this id.
        """

    def version_vector() -> Dict[str, int]:
        """
        Each author's highest contiguous sequence number held.
        """

    def heads() -> Dict[str, int]:
        """
        Each author's highest sequence number held (gaps or not).
        """


@dataclass(frozen=True)
class ReplicationConfig:
    """
    Timing of replication.

    @ivar anti_entropy_interval_s: how often a summary goes to one link.
    @ivar announce_interval_s: how often batched C{ihave}s are sent (the
        node calls L{Replicator.tick} this often).
    @ivar graft_timeout_s: how long an announced entry may take to arrive
        before it is requested.
    @ivar gap_summary_interval_s: at most one gap-triggered summary per
        link this often.
    """

    anti_entropy_interval_s: float = 30.0
    announce_interval_s: float = 0.2
    graft_timeout_s: float = 1.0
    gap_summary_interval_s: float = 1.0


def _check_ids(frame: dict) -> List[str]:
    ids = frame.get("ids")
    if not isinstance(ids, list) or not 0 < len(ids) <= MAX_IDS_PER_FRAME:
        raise FrameError(f"{frame['type']}.ids is not a list of 1-{MAX_IDS_PER_FRAME} ids")
    if not all(is_node_id(i) for i in ids):
        raise FrameError(f"{frame['type']}.ids holds something that is not an entry id")
    return ids


def _check_summary(frame: dict) -> Dict[str, int]:
    vector = frame.get("vv")
    if not isinstance(vector, dict) or len(vector) > MAX_AUTHORS_PER_SUMMARY_FRAME:
        raise FrameError(
            f"summary.vv is not an object of at most {MAX_AUTHORS_PER_SUMMARY_FRAME} authors"
        )
    if not isinstance(frame.get("final"), bool):
        raise FrameError("summary.final is not a boolean")
    for author, seq in vector.items():
        if not is_node_id(author):
            raise FrameError("summary.vv has a key that is not a node id")
        if not isinstance(seq, int) or isinstance(seq, bool) or not 0 <= seq <= 2**53:
            raise FrameError("summary.vv has a value that is not a sequence number")
    return vector


class _LinkState:
    """
    What the replicator keeps per link.
    """

    def __init__(self):
        self.eager = True
        self.announce: List[str] = []
        self.sync_announce: List[str] = []
        self.summary_due = False
        self.summary: Dict[str, int] = {}
        self.last_gap_summary = float("-inf")


class Replicator:
    """
    Decides what each link carries; see the module docstring.

    @ivar missing: announced entry ids not yet held, with the clock time
        they were last requested (or first announced), the links that
        announced them and how many grafts were sent; at most
        L{MAX_MISSING}, and an id is given up after L{MAX_GRAFTS} grafts
        (anti-entropy still brings it if it exists).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        output: IReplicationOutput,
        config: ReplicationConfig = ReplicationConfig(),
        rng: Optional[random.Random] = None,
    ):
        self._clock = clock
        self._output = output
        self._config = config
        self._rng = rng or random.Random()
        self._links: Dict[object, _LinkState] = {}
        self.missing: Dict[str, tuple] = {}
        self._next_anti_entropy = clock.seconds() + config.anti_entropy_interval_s

    # Links

    def link_up(self, link) -> None:
        """
        A link was accepted: start it eager and exchange summaries.
        """
        self._links[link] = _LinkState()
        self.send_summary(link)

    def link_down(self, link) -> None:
        """
        A link closed: forget it.
        """
        self._links.pop(link, None)

    def eager_links(self) -> List[object]:
        """
        @return: the links entries are pushed on in full.
        """
        return [link for link, state in self._links.items() if state.eager]

    def send_summary(self, link) -> None:
        """
        Send this node's version vector on C{link}, in frames of at most
        L{MAX_AUTHORS_PER_SUMMARY_FRAME} authors; the last says C{final}.
        """
        items = sorted(self._output.version_vector().items())
        chunks = [
            dict(items[i:i + MAX_AUTHORS_PER_SUMMARY_FRAME])
            for i in range(0, len(items), MAX_AUTHORS_PER_SUMMARY_FRAME)
        ] or [{}]
        self._output.solicit(link)
        for index, chunk in enumerate(chunks):
            self._output.send(
                link, {"type": "summary", "vv": chunk, "final": index == len(chunks) - 1}
            )

    # Frames in

    def rx_frame(self, link, frame: dict) -> None:
        """
        Handle a C{summary}, C{ihave}, C{graft} or C{prune} frame.

        @raise FrameError: if it is malformed.
        """
        state = self._links.get(link)
        if state is None:
            return
        handler = getattr(self, "_rx_" + frame["type"])
        handler(link, state, frame)

    def _rx_summary(self, link, state: _LinkState, frame: dict) -> None:
        state.summary.update(_check_summary(frame))
        if len(state.summary) > MAX_SUMMARY_AUTHORS:
            state.summary = {}
            raise FrameError(f"summary of more than {MAX_SUMMARY_AUTHORS} authors")
        if not frame["final"]:
            return
        theirs, state.summary = state.summary, {}
        # Compare what we hold (up to each feed's head, across any gap of
        # ours) with what they hold contiguously: they get everything of
        # ours beyond it, including authors they lack entirely.  A claim
        # of more than we hold makes us send nothing for that author.
        cursors = {
            author: theirs.get(author, 0)
            for author, head in self._output.heads().items()
            if head > theirs.get(author, 0)
        }
        if cursors:
            self._output.stream(link, cursors)

    def _rx_ihave(self, link, state: _LinkState, frame: dict) -> None:
        now = self._clock.seconds()
        ids = _check_ids(frame)
        if not isinstance(frame.get("sync", False), bool):
            raise FrameError("ihave.sync is not a boolean")
        if frame.get("sync"):
            # Entries the sender caught up on: if we lack any, pull what
            # we lack with a summary (a flow-controlled stream), rather
            # than grafting ids one by one.
            if not all(self._output.holds(entry_id) for entry_id in ids):
                self.gap_seen(link)
            return
        for entry_id in ids:
            known = self.missing.get(entry_id)
            if known is not None:
                if link not in known[1]:
                    known[1].append(link)
                continue
            if len(self.missing) >= MAX_MISSING or self._output.holds(entry_id):
                continue
            self.missing[entry_id] = (now, [link], 0)

    def _rx_graft(self, link, state: _LinkState, frame: dict) -> None:
        state.eager = True
        self._output.send_entries(link, _check_ids(frame))

    def _rx_prune(self, link, state: _LinkState, frame: dict) -> None:
        state.eager = False

    # Entries

    def entry_added(self, entry_id: str, source, live: bool = True) -> List[object]:
        """
        An entry was committed (received from C{source}, or authored here
        when C{source} is C{None}).

        @param live: C{False} for an entry that arrived to catch this node
            up: it is never pushed (the neighbours mostly hold it already,
            and pushes are not flow-controlled); each link gets up to
            L{MAX_IDS_PER_FRAME} such ids per tick in an C{ihave} marked
            C{sync}, and a neighbour that lacks any pulls with a summary.
        @return: the links to push it to in full; the others get it
            announced at the next tick.
        """
        self.missing.pop(entry_id, None)
        eager = []
        for link, state in self._links.items():
            if link is source:
                continue
            if not live:
                if len(state.sync_announce) < MAX_IDS_PER_FRAME:
                    state.sync_announce.append(entry_id)
            elif state.eager:
                eager.append(link)
            else:
                state.announce.append(entry_id)
        return eager

    def announce(self, link, entry_id: str) -> None:
        """
        Announce C{entry_id} on C{link} at the next tick instead of pushing
        it (the link is congested).
        """
        state = self._links.get(link)
        if state is not None:
            state.announce.append(entry_id)

    def entry_duplicate(self, source) -> None:
        """
        An entry arrived on C{source} that the node already held: the
        link is redundant for live delivery, so ask the sender to prune it
        and stop pushing on it ourselves.
        """
        state = self._links.get(source)
        if state is not None and state.eager:
            state.eager = False
            self._output.send(source, {"type": "prune"})

    def gap_seen(self, source) -> None:
        """
        Something showed that C{source} holds entries this node lacks (an
        entry whose predecessor is missing, or a catch-up announcement):
        ask it with a summary, at most once per C{gap_summary_interval_s}
        (a later request is deferred to the next allowed time).
        """
        state = self._links.get(source)
        if state is None:
            return
        now = self._clock.seconds()
        if now - state.last_gap_summary >= self._config.gap_summary_interval_s:
            state.last_gap_summary = now
            state.summary_due = False
            self.send_summary(source)
        else:
            # Too soon after the last one: send it when the interval is up
            # (see tick), never drop it.
            state.summary_due = True

    # Time

    def tick(self) -> None:
        """
        Send batched announcements, request announced entries that did not
        arrive in time, and run periodic anti-entropy.
        """
        for link, state in self._links.items():
            announce, state.announce = state.announce, []
            for i in range(0, len(announce), MAX_IDS_PER_FRAME):
                self._output.send(link, {"type": "ihave", "ids": announce[i:i + MAX_IDS_PER_FRAME]})
            if state.sync_announce:
                sample, state.sync_announce = state.sync_announce, []
                self._output.send(link, {"type": "ihave", "ids": sample, "sync": True})
        for link, state in list(self._links.items()):
            if state.summary_due:
                self.gap_seen(link)
        self._graft_overdue()
        now = self._clock.seconds()
        if now >= self._next_anti_entropy:
            self._next_anti_entropy = now + self._config.anti_entropy_interval_s
            if self._links:
                self.send_summary(self._rng.choice(list(self._links)))

    def _graft_overdue(self) -> None:
        # Ids leave self.missing when their entry is committed (see
        # entry_added), so what is here is not held.
        now = self._clock.seconds()
        requests: Dict[object, List[str]] = {}
        for entry_id, (since, announcers, grafts) in list(self.missing.items()):
            if now - since < self._config.graft_timeout_s:
                continue
            live = [link for link in announcers if link in self._links]
            if not live or grafts >= MAX_GRAFTS:
                del self.missing[entry_id]
                continue
            link = live[0]
            requests.setdefault(link, []).append(entry_id)
            # Ask the next announcer if this one fails too.
            self.missing[entry_id] = (now, live[1:] + live[:1], grafts + 1)
        for link, ids in requests.items():
            self._links[link].eager = True
            self._output.solicit(link)
            for i in range(0, len(ids), MAX_IDS_PER_FRAME):
                self._output.send(link, {"type": "graft", "ids": ids[i:i + MAX_IDS_PER_FRAME]})
