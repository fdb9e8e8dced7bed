"""
Log replication: which entries go to which link, and when.

L{Replicator} is sans-IO.  The node tells it what happens (a link came up
or went down, a frame arrived, an entry was committed or arrived again,
time passed) and it answers through an L{IReplicationOutput}: frames to
send, and work for the link's producer (L{p2pchat.log.streaming}), which does
everything that can be large with flow control.

Two mechanisms, as in Plumtree (Leitao et al., "Epidemic Broadcast
Trees"), over the node's few links:

  - B{Live delivery}: a newly committed entry is pushed in full on
    I{eager} links and announced by id (C{ihave}) on I{lazy} ones.  A
    duplicate makes its link lazy and asks the sender to C{prune} (never
    the node's last eager link); a first copy makes its link eager; so the
    eager links form a tree.  An entry announced but not pushed within the
    graft timeout (twice how late pushed copies come, L{Replicator.late_s},
    0.05-3 s; at once if no link is eager) is asked for with C{graft},
    which makes that link eager again.
  - B{Anti-entropy}: on every new link and every C{anti_entropy_interval_s}
    a I{summary round} with one link: its version vector in pages of
    L{wire.MAX_AUTHORS_PER_PAGE} authors, one page at a time; the receiver
    walks its feeds in the page's range (in its producer), streams what
    the asker lacks (L{wanted}), then sends C{more}.  A feed with a hole
    is summarised as C{[contiguous, head]}.

Budgets per link (see the constants): a second summary page before
C{more}, or a C{more} with no page unanswered, is misbehaving; pages
beyond L{SUMMARY_PAGES_PER_S} delay C{more}; C{ihave} ids, C{ihave sync}
frames, C{graft} ids and C{prune} frames beyond theirs are dropped with a
rate-limited log line (anti-entropy repairs what is lost); peer-triggered
rounds beyond L{PEER_ROUNDS_PER_S} are deferred.

Memory: per link, one own round, one page being answered (500 authors,
in the producer), six token buckets, one tick's announcements (and
L{wire.MAX_IDS_PER_FRAME} sync ids), L{MAX_MISSING_PER_LINK} missing ids;
in all L{MAX_MISSING} missing ids (about 200 bytes each: 2 MB).
"""

import random
from typing import Callable, Dict, List, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pchat.log.replication_state import (  # noqa: F401 (re-exported)
    COUNTS,
    FRAME_TYPES,
    MAX_GRAFTS,
    MAX_IDS_PER_FRAME,
    MAX_MISSING,
    MAX_MISSING_PER_LINK,
    MIN_MISSING_PER_LINK,
    PAGE_AUTHORS,
    PEER_ROUNDS_PER_S,
    SUMMARY_PAGES_PER_S,
    IReplicationOutput,
    LinkState,
    ReplicationConfig,
    wanted,
)
from p2pchat.log.sweep import Rounds
from p2pchat.mesh import wire
from p2pchat.mesh.wire import FrameError
from p2pchat.safe import LogLimiter, printable

DEFAULT_CONFIG = ReplicationConfig()


def _describe(link) -> str:
    # Peer names are peer-supplied: escaped before they reach a log line.
    return printable(getattr(link, "describe", lambda: repr(link))())


class Replicator:
    """
    Decides what each link carries; see the module docstring.

    @ivar missing: announced entry ids not yet held, with the clock time
        they were last requested (or first announced), the links that
        announced them, how many grafts were sent and the link that
        announced them first (whose share they count against); at most
        L{MAX_MISSING}, and an id is given up after L{MAX_GRAFTS} grafts
        (anti-entropy still brings it if it exists).
    @ivar late_s: how late an announced entry's pushed copy arrives after
        the announcement: a moving estimate that rises fast (half way to
        a later sample) and falls slowly (a sixteenth of the way).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        output: IReplicationOutput,
        config: ReplicationConfig = DEFAULT_CONFIG,
        rng: Optional[random.Random] = None,
    ):
        self._clock = clock
        self._output = output
        self._config = config
        self._rng = rng or random.Random()
        self._links: Dict[object, LinkState] = {}
        self.missing: Dict[str, tuple] = {}
        self._next_anti_entropy = clock.seconds() + config.anti_entropy_interval_s
        self._limiter = LogLimiter(clock)
        self._rounds = Rounds(clock, output, config, self._links)
        self.counts: Dict[str, int] = dict.fromkeys(COUNTS, 0)
        self.late_s = 0.0

    # Links

    def link_up(self, link) -> None:
        """
        A link was accepted: start it eager and run a summary round.
        """
        self._links[link] = LinkState(self._clock)
        self.send_summary(link)

    def link_down(self, link) -> None:
        """
        A link closed: forget it (and the missing ids it announced first).
        """
        state = self._links.pop(link, None)
        if state is not None and state.round_active:
            self._rounds.closed(link)
        if state is not None and state.missing:
            for entry_id, known in list(self.missing.items()):
                if known[3] is link:
                    del self.missing[entry_id]

    def send_summary(self, link) -> None:
        """
        Start a summary round on C{link}; if one is running, run another
        right after it (requests coalesce: at most one round in flight and
        one more due per link).  See L{p2pchat.log.sweep.Rounds}.
        """
        self._rounds.start(link)

    def streamed(self, link) -> None:
        """
        C{link} sent an entry marked C{sync} (catch-up in progress).
        """
        self._rounds.streamed(link)

    # Frames in

    def rx_frame(self, link, frame: dict) -> None:
        """
        Handle a replication frame (its fields were checked by
        L{p2pchat.mesh.wire.parse_frame}).

        @raise FrameError: if the peer broke the protocol (the node closes
            the link as misbehaving).
        """
        state = self._links.get(link)
        if state is None:
            return
        handler = getattr(self, "_rx_" + frame["type"])
        handler(link, state, frame)

    def _over_budget(self, state: LinkState, bucket: str, n: int, link) -> bool:
        if state.buckets[bucket].take(min(n, state.buckets[bucket].burst)):
            return False
        self._limiter.log(
            "over-budget-" + bucket, self.log.warn,
            "dropping {what} from {peer}: over its per-link budget",
            what=bucket, peer=_describe(link),
        )
        return True

    def _rx_summary(self, link, state: LinkState, frame: dict) -> None:
        if state.answering:
            raise FrameError("summary page sent before the previous one was answered")
        state.answering = True
        state.buckets["summary"].charge(1)
        vv = frame["vv"]
        upto = None if frame["final"] else next(reversed(vv))
        self._output.answer(link, frame["after"], upto, vv, lambda: self._answered(link))

    def _answered(self, link) -> None:
        state = self._links.get(link)
        if state is None:
            return
        delay_s = state.buckets["summary"].debt_s()
        if delay_s > 0:
            self._clock.callLater(delay_s, self._answered, link)
            return
        state.answering = False
        self._output.send(link, wire.more())

    def _rx_more(self, link, state: LinkState, frame: dict) -> None:
        self._rounds.more(link, state)

    def _rx_ihave(self, link, state: LinkState, frame: dict) -> None:
        ids = frame["ids"]
        if frame.get("sync"):
            if self._over_budget(state, "sync", 1, link):
                return
            # Entries the sender caught up on: if we still lack any once a
            # late copy had time to arrive (under load most are in flight
            # here too), pull what we lack with a summary round
            # (flow-controlled), rather than grafting ids one by one.
            # Store lookups stop at the first id lacking; the rest are
            # checked (again stopping at the first) once the time is up.
            first = next((i for i, e in enumerate(ids) if not self._output.holds(e)), len(ids))
            lacking = ids[first:]
            if lacking and not state.sync_check:
                state.sync_check_at = self._clock.seconds() + max(
                    self._config.sync_check_s, self.graft_timeout_s())
            state.sync_check = (state.sync_check + lacking)[:MAX_IDS_PER_FRAME]
            return
        if self._over_budget(state, "ihave", len(ids), link):
            return
        now = self._clock.seconds()
        share = max(MIN_MISSING_PER_LINK,
                    min(MAX_MISSING_PER_LINK, MAX_MISSING // max(1, len(self._links))))
        for entry_id in ids:
            known = self.missing.get(entry_id)
            if known is not None:
                if link not in known[1]:
                    known[1].append(link)
                continue
            if (len(self.missing) >= MAX_MISSING or state.missing >= share
                    or self._output.holds(entry_id)):
                continue
            self.missing[entry_id] = (now, [link], 0, link)
            state.missing += 1

    def _rx_graft(self, link, state: LinkState, frame: dict) -> None:
        state.eager = True
        ids = list(dict.fromkeys(frame["ids"]))
        if self._over_budget(state, "graft", len(ids), link):
            return
        if self._output.graft(link, ids):
            self._limiter.log(
                "graft-pending", self.log.warn,
                "dropping graft ids from {peer}: too many pending",
                peer=_describe(link),
            )

    def _rx_prune(self, link, state: LinkState, frame: dict) -> None:
        if not self._over_budget(state, "prune", 1, link):
            state.eager = False

    # Entries

    def entry_added(
        self, entry_id: str, source, live: bool = True,
        reaches: Optional[Callable[[object], bool]] = None,
    ) -> List[object]:
        """
        An entry was committed (received from C{source}, or authored here
        when C{source} is C{None}).

        @param live: C{False} for an entry that arrived to catch this node
            up: it is never pushed (the neighbours mostly hold it already,
            and pushes are not flow-controlled); each link gets up to
            L{MAX_IDS_PER_FRAME} such ids per tick in an C{ihave} marked
            C{sync}, and a neighbour that lacks any pulls with a summary.
        @param reaches: if given, the entry is neither pushed nor announced
            on the links for which it is false (a link whose protocol
            version does not know it).
        @return: the links to push it to in full; the others get it
            announced at the next tick.
        """
        # An entry announced on a lazy link is live in the network, even
        # when it came as the answer to a graft: pushed on, as Plumtree does.
        pushed, live = live, live or entry_id in self.missing
        self._forget_missing(entry_id)
        came = self._links.get(source)
        if pushed and came is not None and not came.eager:
            # Plumtree: the first copy came on this link, which pushes to
            # this node, so it is on the tree: push back on it too.
            came.eager = True
        eager = []
        for link, state in self._links.items():
            if link is source or (reaches is not None and not reaches(link)):
                continue
            if not live:
                if len(state.sync_announce) < MAX_IDS_PER_FRAME:
                    state.sync_announce.append(entry_id)
            elif state.eager:
                eager.append(link)
            else:
                state.announce.append(entry_id)
        return eager

    def _forget_missing(self, entry_id: str) -> None:
        known = self.missing.pop(entry_id, None)
        if known is not None:
            if known[2] == 0:
                # Arrived without a graft: a sample of how late copies are.
                self.counts["late_arrivals"] += 1
                late = self._clock.seconds() - known[0]
                self.late_s += (late - self.late_s) / (2 if late > self.late_s else 16)
            first = self._links.get(known[3])
            if first is not None:
                first.missing -= 1

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
        if state is not None and state.eager and self._eager_besides(source):
            state.eager = False
            self.counts["prunes"] += 1
            self._output.send(source, wire.prune())

    def _eager_besides(self, source) -> bool:
        """
        @return: whether a link other than C{source} is eager.  A node
            never prunes its last eager link: with several authors posting
            at once, prunes for different entries can otherwise cut a node
            off the tree, and it would get everything one graft timeout late.
        """
        return any(state.eager for link, state in self._links.items() if link is not source)

    def gap_seen(self, source) -> None:
        """
        Something showed that C{source} holds entries this node lacks (an
        entry whose predecessor is missing, or a catch-up announcement):
        ask it with a summary round, at most once per
        C{gap_summary_interval_s} and within L{PEER_ROUNDS_PER_S} (a later
        request is deferred to the next allowed time, never dropped).
        """
        state = self._links.get(source)
        if state is None:
            return
        now = self._clock.seconds()
        if (now - state.last_gap_summary >= self._config.gap_summary_interval_s
                and state.buckets["rounds"].take()):
            state.last_gap_summary = now
            state.summary_due = False
            self.counts["gap_rounds"] += 1
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
                self._output.send(link, wire.ihave(announce[i:i + MAX_IDS_PER_FRAME]))
            if state.sync_announce:
                sample, state.sync_announce = state.sync_announce, []
                self._output.send(link, wire.ihave(sample, sync=True))
        now = self._clock.seconds()
        for link, state in list(self._links.items()):
            if state.sync_check and now >= state.sync_check_at:
                lacking, state.sync_check = state.sync_check, []
                if not all(self._output.holds(entry_id) for entry_id in lacking):
                    self.gap_seen(link)
            if state.summary_due:
                self.gap_seen(link)
        self._graft_overdue()
        self._rounds.wake()
        if now >= self._next_anti_entropy:
            self._next_anti_entropy = now + self._config.anti_entropy_interval_s
            if self._links:
                self.send_summary(self._rng.choice(list(self._links)))

    def graft_timeout_s(self) -> float:
        """
        @return: how long an announced entry may take now before it is
            grafted: twice L{late_s}, within the configured bounds.
        """
        config = self._config
        return min(config.max_graft_timeout_s, max(config.graft_timeout_s, 2 * self.late_s))

    def _graft_overdue(self) -> None:
        # Ids leave self.missing when their entry is committed (see
        # entry_added), so what is here is not held.
        now = self._clock.seconds()
        timeout_s = self.graft_timeout_s()
        if not self._eager_besides(None):
            # Nothing is pushed to this node (its neighbours pruned it):
            # waiting for a late copy is pointless; graft at once, which
            # puts it back on the tree.
            timeout_s = 0.0
        requests: Dict[object, List[str]] = {}
        for entry_id, (since, announcers, grafts, first) in list(self.missing.items()):
            wait = timeout_s if not grafts else max(timeout_s, self._config.regraft_s)
            if now - since < wait:
                continue
            live = [link for link in announcers if link in self._links]
            if not live or grafts >= MAX_GRAFTS:
                self._forget_missing(entry_id)
                continue
            if self._output.holds(entry_id):  # a copy is being verified: wait
                self.missing[entry_id] = (now, announcers, grafts + 1, first)
                continue
            link = live[0]
            requests.setdefault(link, []).append(entry_id)
            self.counts["grafted"] += 1
            # Ask the next announcer if this one fails too.
            self.missing[entry_id] = (now, live[1:] + live[:1], grafts + 1, first)
        for link, ids in requests.items():
            self._links[link].eager = True
            self._output.solicit(link)
            for i in range(0, len(ids), MAX_IDS_PER_FRAME):
                self._output.send(link, wire.graft(ids[i:i + MAX_IDS_PER_FRAME]))
