# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
"""
The merge rules: how checked rows (see L{p2pchat.mesh.membership.intake})
change the member table.

  - A higher incarnation wins; for equal incarnations the state with
    higher precedence wins (left > dead > suspect > alive) and the
    heartbeat is the larger one.  This merge is a join, so every order of
    deliveries converges to one table.
  - The signature vouches for the member's statement at an incarnation,
    not for a suspect or dead claim: that stays a rumour.  A node linked
    to a member it heard from recently does not believe rumours about it
    (Lifeguard's local confirmation) and passes them to the member alone.
  - A live node that hears itself suspected or declared dead refutes by
    raising its incarnation.
"""

from twisted.logger import Logger

from p2pchat.log.identity import short_id
from p2pchat.mesh.membership.admission import Admission
from p2pchat.mesh.membership.detector import FailureDetector
from p2pchat.mesh.membership.dissemination import Dissemination
from p2pchat.mesh.membership.own import OwnRow
from p2pchat.mesh.membership.rows import (
    ALIVE,
    DEAD,
    LEFT,
    STATE_RANK,
    SUSPECT,
    base_state,
    signed_part,
)
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import IMembershipOutput, MembershipConfig
from p2pchat.safe import LogLimiter


class Merge:
    """
    Applies received rows to a L{MemberTable}.
    """

    def __init__(
        self,
        own: OwnRow,
        table: MemberTable,
        links: Dissemination,
        detector: FailureDetector,
        admission: Admission,
        output: IMembershipOutput,
        config: MembershipConfig,
        limiter: LogLimiter,
        log: Logger,
    ):
        self._own = own
        self._table = table
        self._links = links
        self._detector = detector
        self._admission = admission
        self._output = output
        self._config = config
        self._limiter = limiter
        self._log = log

    def apply(self, peer_id: str, rows: list, now: float, heard: bool = True) -> None:
        """
        Merge C{rows} (checked) received from C{peer_id}.

        @param heard: whether they came now (C{False}: rows the link owed,
            received earlier, are no sign of life).
        """
        records = self._table.records
        link = self._links.get(peer_id)
        knows = link.knows if link is not None else {}
        for row in rows:
            record = records.get(row["id"])
            if (
                record is not None
                and record.advertised
                and record.incarnation == row["inc"]
                and record.state == row["state"]
                and record.sig == row["sig"]
                and record.name == row["name"]
                and record.address == row["addr"]
            ):
                # The common case: a heartbeat, perhaps new, or one more
                # node's suspect claim (a Lifeguard confirmation).
                if record.state == SUSPECT:
                    self._detector.confirm(record, peer_id)
                heartbeat = row["hb"]
                key = record.key
                known = knows.get(record.node_id)
                if known is None or known[0] < key[0]:
                    knows[record.node_id] = (key[0], key[1], heartbeat)
                elif known[0] == key[0] and heartbeat > known[2]:
                    knows[record.node_id] = (known[0], max(known[1], key[1]), heartbeat)
                if heartbeat > record.heartbeat:
                    record.heartbeat = heartbeat
                    # Equality, not identity: states in received rows are
                    # strings decoded from JSON, not these constants.
                    if record.state == ALIVE or record.state == SUSPECT:
                        record.last_heard = now
                    record.changed()
                    self._links.mark(record.node_id)
            else:
                self._row(peer_id, row, now)
        sender = records.get(peer_id)
        if heard and sender is not None and sender.state in (ALIVE, SUSPECT):
            sender.last_heard = now

    def _row(self, peer_id: str, row: dict, now: float) -> None:
        node_id = row["id"]
        incarnation = row["inc"]
        state = row["state"]
        rank = STATE_RANK[state]
        key = (incarnation, rank, row["hb"])
        record = self._table.get(node_id)
        own = self._own
        if record is None and node_id != own.node_id and not self._learn(peer_id, row, now):
            return  # not kept: keep no per-link state about it either
        self._links.learned(peer_id, node_id, key)
        if node_id == own.node_id:
            self._about_self(peer_id, row)
            return
        if record is None:
            return
        old_state = record.state
        restart = False
        if not record.advertised or incarnation > record.incarnation:
            restart = record.state == SUSPECT
            record.suspecters = None
            record.advertised = True
            record.incarnation = incarnation
            # The signature vouches for the member's statement at this
            # incarnation, not for a suspect or dead claim: that stays a
            # rumour (local confirmation applies), as at the current one.
            record.state = LEFT if state == LEFT else ALIVE
            record.heartbeat = row["hb"]
            record.name = row["name"]
            record.address = row["addr"]
            record.sig = row["sig"]
            if state == ALIVE:
                record.last_heard = now
            elif state != LEFT:
                self._rumour(record, row, now, peer_id)
        elif incarnation == record.incarnation:
            if (record.sig, record.name, record.address, base_state(record.state)) != (
                row["sig"], row["name"], row["addr"], base_state(state)
            ):
                # Two statements signed for one incarnation (or a left
                # row against a tombstone): keep the one we hold.
                return
            changed = False
            if rank > STATE_RANK[record.state]:
                changed = self._rumour(record, row, now, peer_id)
            elif record.state == SUSPECT and state in (SUSPECT, DEAD):
                self._detector.confirm(record, peer_id)
            if row["hb"] > record.heartbeat:
                record.heartbeat = row["hb"]
                if record.state in (ALIVE, SUSPECT):
                    record.last_heard = now
                changed = True
            if not changed:
                return
        else:
            # The peer has an older row than ours: tell it ours (even if we
            # believed we had, the frame was lost or crossed this one).
            link = self._links.get(peer_id)
            if link is not None:
                link.knows[node_id] = key
                link.repair[node_id] = None
            return
        record.changed()
        record.adopt(row)
        self._links.mark(node_id)
        if record.state != old_state or (restart and record.state == SUSPECT):
            # (A suspicion at a new incarnation is timed from now.)
            self._detector.state_changed(record, old_state, now)

    def _rumour(self, record: Record, row: dict, now: float, row_sender: str) -> bool:
        """
        Someone claims C{record} is suspect or dead at its current
        incarnation (C{row_sender} sent the claim: one more confirmation
        of the suspicion).  Local confirmation (Lifeguard): a node linked to the
        member that heard from it within C{failure_timeout_s} keeps it
        alive and passes the rumour to the member alone (once per
        incarnation), which refutes it; a node that saw its heartbeat
        advance that recently takes C{dead} only as C{suspect}.

        @return: whether the state changed.
        """
        state = row["state"]
        fresh = now - record.last_heard < self._config.failure_timeout_s
        if state in (SUSPECT, DEAD) and fresh:
            if record.links:
                if record.told_inc != record.incarnation and record.node_id in self._links:
                    record.told_inc = record.incarnation
                    self._links.tell(record.node_id, row)
                return False
            if state == DEAD:
                state = SUSPECT
        if state in (SUSPECT, DEAD):
            self._detector.confirm(record, row_sender)
        if STATE_RANK[state] <= STATE_RANK[record.state]:
            return False
        record.state = state
        return True

    def _learn(self, peer_id: str, row: dict, now: float) -> bool:
        """
        @return: whether the member was added (there was room).
        """
        if not self._table.room_for_one_more():
            return False
        record = Record(
            row["id"], row["name"], row["addr"], row["inc"], row["state"], row["hb"], now
        )
        record.sig = row["sig"]
        record.adopt(row)
        self._table.add(record)
        if peer_id != record.node_id:
            self._admission.unproven(record.node_id)
        self._links.mark(record.node_id)
        if record.state != ALIVE:
            self._detector.due_by(now + self._config.failure_timeout_s)
        self._output.member_changed(record.member(), None)
        return True

    def _about_self(self, peer_id: str, row: dict) -> None:
        """
        Refute a rumour that this node is suspect, dead or left, a
        heartbeat ahead of ours, or a row of ours from before a restart:
        raise the incarnation past it and sign the new row.
        """
        own = self._own
        if own.hidden:
            return
        incarnation = row["inc"]
        if incarnation < own.incarnation:
            return
        if (
            incarnation == own.incarnation
            and row["state"] == ALIVE
            and row["hb"] <= own.heartbeat
            and signed_part(row) == signed_part(own.row())
        ):
            return
        self._limiter.log(
            "refute", self._log.info,
            "refuting rumour from {peer} that we are {state} at incarnation {inc}",
            peer=short_id(peer_id), state=row["state"], inc=incarnation,
        )
        own.raise_incarnation(incarnation + 1)
        self._links.mark_self()
