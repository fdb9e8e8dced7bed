# -*- test-case-name: tests.unit.test_membership_parts,tests.unit.test_membership -*-
"""
Failure detection: heartbeat time-out with suspicion.

A member whose heartbeat has not advanced for C{failure_timeout_s}
becomes suspect; suspect for another C{failure_timeout_s} with no
heartbeat, dead.  Losing the last link to a member is a strong hint: if
its heartbeat does not advance through other links within
C{link_loss_grace_s}, it is suspected at once.  Dead and left members are
pruned after C{tombstone_s}.  Suspect and dead are gossiped (the
detector marks the row for every link).
"""

from twisted.logger import Logger

from p2pchat.log.identity import short_id
from p2pchat.mesh.membership.dissemination import Dissemination
from p2pchat.mesh.membership.rows import ALIVE, DEAD, SUSPECT
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import IMembershipOutput, MembershipConfig
from p2pchat.safe import LogLimiter, printable


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

    def link_lost(self, record: Record, now: float) -> None:
        """
        Our last link to C{record}'s member closed: suspect it unless its
        heartbeat advances within C{link_loss_grace_s}.
        """
        record.link_lost_at = now
        self.due_by(now + self._config.link_loss_grace_s)

    def check(self, now: float) -> None:
        """
        Suspect silent members, declare long-suspect ones dead, prune old
        tombstones, and note when the next of these can be due.
        """
        timeout = self._config.failure_timeout_s
        grace = self._config.link_loss_grace_s
        next_at = now + timeout
        prune = []
        for record in list(self._table.records.values()):
            if not record.advertised:
                continue
            state = record.state
            if state == ALIVE:
                if record.link_lost_at is not None:
                    if record.last_heard > record.link_lost_at:
                        record.link_lost_at = None
                    elif now >= record.link_lost_at + grace:
                        self._suspect(record, now, "our last link to it closed")
                        next_at = min(next_at, now + timeout)
                        continue
                    else:
                        next_at = min(next_at, record.link_lost_at + grace)
                due = record.last_heard + timeout
                if now >= due:
                    self._suspect(record, now, f"no heartbeat for {timeout:g} s")
                    next_at = min(next_at, now + timeout)
                else:
                    next_at = min(next_at, due)
            elif state == SUSPECT:
                due = max(record.state_since, record.last_heard) + timeout
                if now >= due:
                    self.set_state(record, DEAD, now)
                else:
                    next_at = min(next_at, due)
            elif record.links == 0:
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
        if record.state != ALIVE:
            self.due_by(now + self._config.failure_timeout_s)
        self._output.member_changed(record.member(), old_state)

    def _suspect(self, record: Record, now: float, why: str) -> None:
        self._limiter.log(
            "suspect", self._log.info,
            "suspecting {name} ({who}): {why}",
            name=printable(record.name), who=short_id(record.node_id), why=why,
        )
        record.link_lost_at = None
        self.set_state(record, SUSPECT, now)
