# -*- test-case-name: tests.unit.test_membership_parts,tests.unit.test_membership_probe -*-
"""
Failure detection: suspicion and its time-out (Lifeguard's), and
tombstone pruning.

A member is suspected on evidence: this node's probes of it went
unanswered, or its last link closed and no other link reaches it (see
L{p2pchat.mesh.membership.probe}), or a peer gossips a suspect claim
(see L{p2pchat.mesh.membership.merge}).  A suspect member that does not
refute (a higher incarnation) within the suspicion time-out (counted
from its last frame to this node, if later) is declared dead.  The
time-out starts at C{failure_timeout_s} and shrinks as independent
confirmations arrive (distinct nodes that sent the claim, or
this node's own evidence), Lifeguard's formula:

    timeout = max(min, max - (max - min) * log(C + 1) / log(K + 1))

with C{max = failure_timeout_s}, C{min = max * }L{SUSPICION_MIN_FRACTION}
and C{K = }L{CONFIRMATIONS} confirmations beyond the first.  Dead and
left members are pruned after C{tombstone_s}.  Suspect and dead are
gossiped (the detector marks the row for every link).
"""

import math

from twisted.logger import Logger

from p2pchat.log.identity import short_id
from p2pchat.mesh.membership.dissemination import Dissemination
from p2pchat.mesh.membership.rows import ALIVE, DEAD, SUSPECT
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import IMembershipOutput, MembershipConfig
from p2pchat.safe import LogLimiter, printable

#: Confirmations (beyond the first suspicion) that bring the suspicion
#: time-out down to its least.
CONFIRMATIONS = 3
#: The least suspicion time-out, as a fraction of C{failure_timeout_s}.
SUSPICION_MIN_FRACTION = 0.625


class FailureDetector:
    """
    The time-outs of every member in a L{MemberTable}, and its state
    changes.

    @ivar next_check_at: the clock time by which L{check} must run.
    """

    def __init__(
        self,
        table: MemberTable,
        links: Dissemination,
        output: IMembershipOutput,
        config: MembershipConfig,
        limiter: LogLimiter,
        log: Logger,
        now: float,
    ):
        self._table = table
        self._links = links
        self._output = output
        self._config = config
        self._limiter = limiter
        self._log = log
        self.next_check_at = now

    def due_by(self, at: float) -> None:
        """
        Run L{check} no later than C{at}.
        """
        self.next_check_at = min(self.next_check_at, at)

    def suspicion_timeout(self, record: Record) -> float:
        """
        @return: how long C{record}'s member may stay suspect, given how
            many independent nodes confirmed the suspicion.
        """
        most = self._config.failure_timeout_s
        least = most * SUSPICION_MIN_FRACTION
        extra = max(0, len(record.suspecters or ()) - 1)
        shrink = math.log(extra + 1) / math.log(CONFIRMATIONS + 1)
        return max(least, most - (most - least) * shrink)

    def suspect(self, record: Record, now: float, why: str, by: str) -> None:
        """
        Suspect C{record}'s member (if alive and gossiped) on C{by}'s
        evidence (C{by} is this node's id for its own).
        """
        if record.state != ALIVE or not record.advertised:
            return
        self._limiter.log(
            "suspect", self._log.info,
            "suspecting {name} ({who}): {why}",
            name=printable(record.name), who=short_id(record.node_id), why=why,
        )
        self.confirm(record, by)
        self.set_state(record, SUSPECT, now)

    def confirm(self, record: Record, by: str) -> None:
        """
        C{by} suspects C{record}'s member at its current incarnation: one
        more independent confirmation (at most L{CONFIRMATIONS} + 1 are
        kept), which may bring its death nearer.
        """
        suspecters = record.suspecters
        if suspecters is None:
            suspecters = record.suspecters = set()
        if by in suspecters or len(suspecters) > CONFIRMATIONS:
            return
        suspecters.add(by)
        if record.state == SUSPECT:
            since = max(record.state_since, record.last_heard)
            self.due_by(since + self.suspicion_timeout(record))

    def check(self, now: float) -> None:
        """
        Declare dead the suspects whose time-out passed, prune old
        tombstones, and note when the next of these can be due.
        """
        next_at = now + self._config.tombstone_s
        prune = []
        for record in list(self._table.records.values()):
            if not record.advertised:
                continue
            state = record.state
            if state == SUSPECT:
                # A suspect that still sends us frames will refute: its
                # time-out runs from the last one.
                due = max(record.state_since, record.last_heard) + self.suspicion_timeout(record)
                if now >= due:
                    self.set_state(record, DEAD, now)
                else:
                    next_at = min(next_at, due)
            elif state != ALIVE and record.links == 0:
                due = record.state_since + self._config.tombstone_s
                if now >= due:
                    prune.append(record.node_id)
                else:
                    next_at = min(next_at, due)
        for node_id in prune:
            self._table.prune(node_id)
        self.next_check_at = next_at

    def set_state(self, record: Record, state: str, now: float) -> None:
        """
        Move C{record} to C{state} and gossip it.
        """
        old_state = record.state
        record.state = state
        record.changed()
        self._links.mark(record.node_id)
        self.state_changed(record, old_state, now)

    def state_changed(self, record: Record, old_state: str, now: float) -> None:
        """
        C{record}'s state changed (from C{old_state}): time it from now,
        and tell the output.
        """
        record.state_since = now
        if record.state == ALIVE:
            record.suspecters = None
        elif record.state == SUSPECT:
            self.due_by(now + self.suspicion_timeout(record))
        else:
            self.due_by(now + self._config.tombstone_s)
        self._output.member_changed(record.member(), old_state)
