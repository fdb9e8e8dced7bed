# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
"""
Intake: which rows of a received gossip frame are applied.

The whole frame is checked (its envelope, the form of every row, and the
signature of every row that would change a signed part this node holds)
before any row is applied.  Rows over the link's budgets
(L{p2pchat.mesh.membership.admission}) are not fatal; a malformed or
forged row is (the node closes the link).

A row over the new-member or signature-check budget is not applied now
but I{owed}: kept (form-checked, signature not yet checked), at most
L{OWED_ROWS_PER_LINK} per link and L{OWED_ROWS_IN_ALL} in all, and
applied as the link's budgets refill (L{Intake.release}, at each tick).
The sender takes a row it sent as known and does not send it again
(changes are sent a bounded number of times, anti-entropy is slow), so
a dropped row would leave this node without that member until much
later: a node joining a network larger than the budget's burst would
never learn everyone.  Keeping what is owed costs bounded memory, and
no more signature checks or new members per second than the budgets
allow.
"""

from typing import Callable, Dict, List, Optional, Set

from twisted.logger import Logger

from p2pchat.log.identity import short_id
from p2pchat.mesh import wire
from p2pchat.mesh.membership.admission import NEW_MEMBERS_BURST, Admission
from p2pchat.mesh.membership.own import OwnRow
from p2pchat.mesh.membership.rows import (
    MAX_HEARTBEAT,
    base_state,
    check_row,
    signed_part,
    verify_row,
)
from p2pchat.mesh.membership.table import MemberTable
from p2pchat.safe import LogLimiter

#: The frame types membership handles.
FRAME_TYPES = frozenset({"gossip"})
#: Rows over a budget kept per link to apply later, at most (the
#: new-member burst: one link-up push of a table that large).
OWED_ROWS_PER_LINK = NEW_MEMBERS_BURST
#: Rows kept in all (a row is at most about 1 KiB: 8 MiB), whatever the
#: number of links: enough for the links a node keeps (5 plus 2 of slack).
OWED_ROWS_IN_ALL = 8 * OWED_ROWS_PER_LINK


class Intake:
    """
    Checks received gossip frames against the table and the budgets.

    @ivar dropped_rows: rows not applied when they came, for being over a
        budget (most are owed, applied later) or replays of a pruned
        member's rows from before its leave.
    @ivar lost_rows: rows over a budget not kept (the link already owed
        L{OWED_ROWS_PER_LINK}, or all links L{OWED_ROWS_IN_ALL}).
    @ivar owed_rows: rows owed by all links.
    """

    def __init__(
        self,
        own: OwnRow,
        table: MemberTable,
        admission: Admission,
        limiter: LogLimiter,
        log: Logger,
        verify: Optional[Callable[[dict], bool]] = None,
    ):
        """
        @param verify: checks a well-formed row's signature (a simulation
            of many nodes in one process may remember its answers);
            C{None}: L{verify_row}.
        """
        self._verify = verify
        self._own = own
        self._table = table
        self._admission = admission
        self._limiter = limiter
        self._log = log
        self.dropped_rows = 0
        self.lost_rows = 0
        #: Rows over a budget, by link then member id, oldest first.
        self._owed: Dict[str, Dict[str, dict]] = {}
        self.owed_rows = 0
        self._deferred = False

    def check_frame(self, peer_id: str, frame: dict) -> list:
        """
        @return: the rows of C{frame} to apply: well-formed, authentic,
            and within the link's budgets.
        @raise wire.FrameError: if the frame or a row is malformed or
            forged.
        """
        if frame.get("type") not in FRAME_TYPES:
            raise wire.FrameError(f"membership cannot handle frame type {frame.get('type')!r}")
        wire.check_gossip(frame)
        rows = frame["rows"]
        records = self._table.records
        verified: Set[tuple] = set()
        accepted = []
        checked = []
        beats_ok = True
        for row in rows:
            node_id = row.get("id") if type(row) is dict else None
            record = records.get(node_id) if type(node_id) is str else None
            if (
                record is not None
                and record.advertised
                and record.sig == row.get("sig")
                and record.incarnation == row.get("inc")
                and type(row["inc"]) is int
                and record.state == row.get("state")
                and record.name == row.get("name")
                and record.address == row.get("addr")
                and type(row.get("hb")) is int
                and 0 <= row["hb"] <= MAX_HEARTBEAT
            ):
                # A heartbeat: the signed part is the one this node holds.
                if beats_ok and not self._admission.may_beat(peer_id, len(records)):
                    beats_ok = False
                    self._over_budget(peer_id, "heartbeats")
                if beats_ok:
                    accepted.append(row)
                continue
            held = (
                self._held(node_id)
                if record is None and self._owed and type(node_id) is str
                else None
            )
            if held is not None and held == row:
                # Checked when it came first (and owed since): use that
                # copy, whose form is known good.
                checked.append(held)
                continue
            check_row(row, records)
            checked.append(row)
        accepted.extend(row for row in checked if self._authentic(peer_id, row, verified))
        if len(accepted) < len(rows):
            self.dropped_rows += len(rows) - len(accepted)
        return accepted

    def _authentic(self, peer_id: str, row: dict, verified: Set[tuple]) -> bool:
        """
        Check the signature of C{row} if it would change a signed part
        this node holds (at most once per frame and statement).

        @return: whether to apply it (C{False}: dropped, over a budget or
            a replay of a pruned member's row from before its leave).
        @raise wire.FrameError: if the signature is not the member's.
        """
        node_id = row["id"]
        record = self._table.records.get(node_id)
        own = self._own
        if record is not None and record.advertised:
            if row["inc"] < record.incarnation:
                return True
            if (
                record.sig == row["sig"]
                and record.incarnation == row["inc"]
                and record.name == row["name"]
                and record.address == row["addr"]
                and base_state(record.state) == base_state(row["state"])
            ):
                return True
        elif node_id == own.node_id:
            if row["inc"] < own.incarnation or own.hidden:
                return False
            own_row = own.row()
            if row["inc"] == own_row["inc"] and signed_part(row) == signed_part(own_row):
                return True
        else:
            gone = self._table.gone.get(node_id)
            if gone is not None and row["inc"] <= gone:
                return False
            if record is None and not self._admission.may_learn(peer_id):
                self._over_budget(peer_id, "new members")
                return self._owe(peer_id, row)
        statement = (node_id,) + signed_part(row)
        if statement in verified:
            return True
        if not self._admission.may_verify(peer_id):
            self._over_budget(peer_id, "signature checks")
            return self._owe(peer_id, row)
        if not (self._verify or verify_row)(row):
            raise wire.FrameError(
                f"gossip row for {short_id(node_id)} at incarnation {row['inc']}: "
                f"signature is not its member's"
            )
        verified.add(statement)
        return True

    def _owe(self, peer_id: str, row: dict) -> bool:
        """
        Keep C{row} (over a budget) to apply when C{peer_id}'s budgets
        allow, the newest row per member, at most L{OWED_ROWS_PER_LINK}
        members per link and L{OWED_ROWS_IN_ALL} in all.

        @return: C{False} (not to apply now).
        """
        self._deferred = True
        owed = self._owed.setdefault(peer_id, {})
        held = owed.get(row["id"])
        if held is not None:
            if row["inc"] >= held["inc"]:
                owed[row["id"]] = row
        elif len(owed) < OWED_ROWS_PER_LINK and self.owed_rows < OWED_ROWS_IN_ALL:
            owed[row["id"]] = row
            self.owed_rows += 1
        else:
            self.lost_rows += 1
        return False

    def _held(self, node_id: object) -> Optional[dict]:
        """
        @return: a row about C{node_id} some link owes, or C{None}.
        """
        for owed in self._owed.values():
            row = owed.get(node_id)
            if row is not None:
                return row
        return None

    def owing(self) -> List[str]:
        """
        @return: the links that owe this node rows.
        """
        return [peer_id for peer_id, owed in self._owed.items() if owed]

    def release(self, peer_id: str) -> list:
        """
        Take the rows C{peer_id}'s link owes, oldest first, while its
        budgets allow (the first row over them stays first and stops the
        release: one tick's work is what the budgets allow, plus one
        row).

        @return: the rows to apply.
        @raise wire.FrameError: if a row's signature is not its member's
            (the link is forgotten: close it).
        """
        owed = self._owed.get(peer_id)
        if not owed:
            return []
        verified: Set[tuple] = set()
        accepted = []
        for node_id in list(owed):
            row = owed.pop(node_id)
            self.owed_rows -= 1
            self._deferred = False
            try:
                authentic = self._authentic(peer_id, row, verified)
            except wire.FrameError:
                self.forget_link(peer_id)
                raise
            if authentic:
                accepted.append(row)
            elif self._deferred:
                # Over a budget again: it waits, first in turn.
                self._owed[peer_id] = {node_id: row, **owed}
                break
        return accepted

    def forget_link(self, peer_id: str) -> None:
        """
        The last link to C{peer_id} closed: it owes nothing any more.
        """
        self.owed_rows -= len(self._owed.pop(peer_id, ()))

    def _over_budget(self, peer_id: str, what: str) -> None:
        fate = "dropped" if what == "heartbeats" else "owed, applied as it refills"
        self._limiter.log(
            what, self._log.warn,
            "gossip rows from {peer} over its budget of {what}: " + fate +
            " ({dropped} rows not applied at once, {lost} lost, before this frame)",
            peer=short_id(peer_id), what=what, dropped=self.dropped_rows, lost=self.lost_rows,
        )
