# -*- test-case-name: tests.unit.test_membership_probe,tests.unit.test_membership -*-
"""
Probing (SWIM's failure detector, through links).

Every C{probe_interval_s} this node probes one linked peer, in a shuffled
round-robin over its links: it sends a C{probe} and expects a
C{probe-ack} (or any frame: every frame proves its sender alive) within
C{probe_timeout_s}.  Links are TCP, so a lost answer means a stalled peer
or a stalled link, not a lost datagram.  On time-out it probes again on
the link and asks up to C{indirect_probes} other linked peers to probe
the member for it (C{probe-req}); a peer linked to the member probes it
and relays the answer as a C{probe-ack} naming it.  A member that answers
none of L{PROBE_ATTEMPTS} such rounds, C{probe_timeout_s} each, is
suspected (see L{p2pchat.mesh.membership.detector} for the suspicion
time-out).

Only a linked member can be probed: the others are each probed by their
own linked peers, which gossip what they find.  Losing the last link to a
member is a fast hint: this node asks its other links at once whether
any of them still reaches the member (a C{probe-req} each), and suspects
it after C{probe_timeout_s} unless one does.

A node that was itself stalled (its ticks came late: a frozen process, a
long garbage collection) does not blame its peers for the answers it
could not read: it restarts the probes under way, and declares no one
dead before it has read what waited (Lifeguard's local health, in its
simplest form).

A peer that closes a link on purpose (it has more than it keeps) says so
first (C{unlink}): the end it drops does not suspect it.

Budgets: a link's C{probe} and C{probe-req} frames share a token bucket
(L{p2pchat.mesh.membership.admission.PROBES_PER_S}); frames over it are
ignored.  At most L{MAX_RELAYS} probes made on others' behalf are under
way at once.
"""

from dataclasses import dataclass
from random import Random
from typing import Dict, List, Optional, Set

from p2pchat.mesh import wire
from p2pchat.mesh.membership.admission import Admission
from p2pchat.mesh.membership.detector import FailureDetector
from p2pchat.mesh.membership.dissemination import Dissemination
from p2pchat.mesh.membership.rows import ALIVE
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import IMembershipOutput, MembershipConfig

#: The frame types the prober handles (defined with the wire format).
PROBE_FRAMES = wire.PROBE_FRAMES
#: Rounds of probes (the first direct only) before a member is suspected.
PROBE_ATTEMPTS = 3
#: Probes made for other nodes (answers to C{probe-req}) under way at once.
MAX_RELAYS = 64
#: A tick later than this many gossip intervals means this node stalled.
STALL_INTERVALS = 3


@dataclass
class Probe:
    """
    One probe under way.

    @ivar target: the member probed.
    @ivar seq: the number its answers carry.
    @ivar sent_at: when it started (any frame from the member after this
        answers it).
    @ivar deadline: when the current stage times out.
    @ivar attempt: the rounds of probes sent (see L{PROBE_ATTEMPTS}).
    @ivar answered: whether an answer came.
    """

    target: str
    seq: int
    sent_at: float
    deadline: float
    attempt: int = 1
    answered: bool = False


@dataclass
class Relay:
    """
    A probe made for C{requester} (its C{probe-req} C{seq}) of C{target}.
    """

    requester: str
    seq: int
    target: str
    deadline: float


class Prober:
    """
    Probes linked peers and judges them.
    """

    def __init__(
        self,
        node_id: str,
        table: MemberTable,
        links: Dissemination,
        detector: FailureDetector,
        admission: Admission,
        output: IMembershipOutput,
        config: MembershipConfig,
        rng: Random,
        now: float,
    ):
        self._node_id = node_id
        self._table = table
        self._links = links
        self._detector = detector
        self._admission = admission
        self._output = output
        self._config = config
        self._rng = rng
        self._seq = 0
        self._order: List[str] = []
        self._current: Optional[Probe] = None
        #: Members whose last link closed, checked through other links.
        self._lost: Dict[str, Probe] = {}
        self._relays: Dict[int, Relay] = {}
        #: Peers that said they close their link on purpose (C{unlink}).
        self._unlinking: Set[str] = set()
        self._next_probe_at = now + config.probe_interval_s
        self._last_tick = now

    # Inputs

    def stalled(self, now: float) -> bool:
        """
        @return: whether this tick comes late (this node was stalled since
            the last one).
        """
        return now - self._last_tick > STALL_INTERVALS * self._config.gossip_interval_s

    def tick(self, now: float) -> None:
        """
        Judge the probes that timed out, and start the next one when due.
        """
        config = self._config
        stalled = self.stalled(now)
        self._last_tick = now
        if stalled:
            # Our own silence: answers may be waiting unread.  Start over.
            self._current = None
            for probe in self._lost.values():
                probe.deadline = now + config.probe_timeout_s
            self._next_probe_at = now + config.probe_interval_s
            return
        for seq in [s for s, r in self._relays.items() if now >= r.deadline]:
            del self._relays[seq]
        self._judge_lost(now)
        probe = self._current
        if probe is not None:
            record = self._table.get(probe.target)
            if self._answered(probe, record) or record is None or record.state != ALIVE:
                self._current = None
            elif now >= probe.deadline:
                if probe.attempt >= PROBE_ATTEMPTS:
                    self._current = None
                    self._detector.suspect(
                        record, now, "it answered no probe", self._node_id
                    )
                elif probe.target in self._links:
                    probe.attempt += 1
                    probe.deadline = now + config.probe_timeout_s
                    self._output.send(probe.target, wire.probe(probe.seq))
                    self._ask_others(probe)
                else:
                    self._current = None
        if self._current is None and now >= self._next_probe_at:
            self._next_probe_at = now + config.probe_interval_s
            target = self._next_target()
            if target is not None:
                self._seq += 1
                self._current = Probe(target, self._seq, now, now + config.probe_timeout_s)
                self._output.send(target, wire.probe(self._seq))

    def unlinked(self, peer_id: str) -> bool:
        """
        Our last link to C{peer_id} closed.

        @return: whether the peer said it closed it on purpose (C{unlink}).
        """
        if peer_id in self._unlinking:
            self._unlinking.discard(peer_id)
            return True
        return False

    def link_lost(self, record: Record, now: float) -> None:
        """
        Our last link to C{record}'s member closed: ask the other links
        whether one reaches it; suspect it at once if there is none to
        ask, else after C{probe_timeout_s} unless one does.
        """
        if self._current is not None and self._current.target == record.node_id:
            self._current = None
        self._seq += 1
        probe = Probe(
            record.node_id, self._seq, now, now + self._config.probe_timeout_s, PROBE_ATTEMPTS
        )
        if not self._ask_others(probe):
            self._detector.suspect(record, now, "our last link to it closed", self._node_id)
            return
        self._lost[record.node_id] = probe

    def rx_probe(self, peer_id: str, frame: dict) -> None:
        """
        A C{probe}, C{probe-ack} or C{probe-req} (checked by
        L{wire.parse_frame}) arrived from C{peer_id}.
        """
        kind = frame["type"]
        if kind == "unlink":
            self._unlinking.add(peer_id)
            return
        seq = frame["seq"]
        if kind == "probe-ack":
            self._ack(peer_id, seq, frame.get("target", peer_id))
        elif not self._admission.may_probe(peer_id):
            return
        elif kind == "probe":
            self._output.send(peer_id, wire.probe_ack(seq))
        else:
            self._probe_for(peer_id, seq, frame["target"])

    # Helpers

    def _ack(self, peer_id: str, seq: int, target: str) -> None:
        probe = self._current
        if probe is not None and probe.seq == seq and probe.target == target:
            probe.answered = True
        lost = self._lost.get(target)
        if lost is not None and lost.seq == seq and peer_id != target:
            lost.answered = True
        relay = self._relays.get(seq)
        if relay is not None and relay.target == peer_id and target == peer_id:
            del self._relays[seq]
            if relay.requester in self._links:
                self._output.send(relay.requester, wire.probe_ack(relay.seq, relay.target))

    def _probe_for(self, requester: str, seq: int, target: str) -> None:
        if target == self._node_id:
            self._output.send(requester, wire.probe_ack(seq, target))
            return
        if target == requester or target not in self._links or len(self._relays) >= MAX_RELAYS:
            return
        self._seq += 1
        deadline = self._last_tick + self._config.probe_timeout_s * 2
        self._relays[self._seq] = Relay(requester, seq, target, deadline)
        self._output.send(target, wire.probe(self._seq))

    def _ask_others(self, probe: Probe) -> int:
        """
        Send a C{probe-req} about C{probe}'s target to up to
        C{indirect_probes} other linked peers.

        @return: how many were asked.
        """
        others = sorted(peer_id for peer_id in self._links.links if peer_id != probe.target)
        chosen = self._rng.sample(others, min(self._config.indirect_probes, len(others)))
        for peer_id in chosen:
            self._output.send(peer_id, wire.probe_req(probe.seq, probe.target))
        return len(chosen)

    def _answered(self, probe: Probe, record: Optional[Record]) -> bool:
        return probe.answered or (record is not None and record.last_heard >= probe.sent_at)

    def _judge_lost(self, now: float) -> None:
        for node_id, probe in list(self._lost.items()):
            record = self._table.get(node_id)
            if (
                record is None
                or record.state != ALIVE
                or record.links
                or self._answered(probe, record)
            ):
                del self._lost[node_id]
            elif now >= probe.deadline:
                del self._lost[node_id]
                self._detector.suspect(
                    record, now, "our last link to it closed and no other link reaches it",
                    self._node_id,
                )

    def _next_target(self) -> Optional[str]:
        """
        @return: the next linked, alive, advertised member in a shuffled
            round-robin (SWIM's), or C{None}.
        """
        for _ in range(2):
            while self._order:
                peer_id = self._order.pop()
                record = self._table.get(peer_id)
                if (
                    peer_id in self._links
                    and record is not None
                    and record.advertised
                    and record.state == ALIVE
                ):
                    return peer_id
            self._order = sorted(self._links.links)
            self._rng.shuffle(self._order)
        return None
