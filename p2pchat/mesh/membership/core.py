# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_probe -*-
"""
Gossip membership: who is in the network, where they listen, and whether
they are alive, suspect, dead or gone.

L{Membership} is a sans-IO state machine.  It opens no sockets and imports
no reactor: the node feeds it named inputs (L{Membership.link_up},
L{Membership.link_down}, L{Membership.rx_frame}, L{Membership.tick},
L{Membership.leave} ...) and it answers through an L{IMembershipOutput}.
Time comes from an injected L{IReactorTime}, randomness from an injected
L{random.Random}.  See C{docs/membership.md} for the frames and the
numbers.

L{Membership} is the facade of the package; each concern has its module:

  - L{p2pchat.mesh.membership.rows}: a row's form and the signature by
    which a member vouches for it (only the member can raise its
    incarnation, rename, re-address or leave).
  - L{p2pchat.mesh.membership.own}: this node's own signed row.
  - L{p2pchat.mesh.membership.table}: the member table (at most
    C{max_members} rows, about 1 KiB each with bookkeeping, plus as many
    remembered leaves, about 150 bytes each).
  - L{p2pchat.mesh.membership.admission}: budgets per link (new members,
    heartbeats, signature checks) and in all, and eviction of unproven
    members first.
  - L{p2pchat.mesh.membership.intake}: which rows of a received frame are
    applied (form, signatures, budgets).
  - L{p2pchat.mesh.membership.merge}: how they change the table (a join:
    incarnation, then state precedence, then heartbeat; local
    confirmation of rumours; refuting rumours about this node).
  - L{p2pchat.mesh.membership.dissemination}: which rows go on which link
    (changes only, each sent a bounded number of times; per-link dirty
    sets and reconciliation, push-pull at link-up, bounded anti-entropy
    every C{sync_interval_s}, at most C{FLUSH_ROWS_PER_TICK} rows per
    link per flush; per link one C{knows} entry per member).
  - L{p2pchat.mesh.membership.probe}: probing linked peers (SWIM's
    probe and probe-req through links; a lost link is a fast hint).
  - L{p2pchat.mesh.membership.detector}: suspicion with Lifeguard's
    shrinking time-out, and tombstone pruning.
  - L{p2pchat.mesh.membership.view}: the active view (HyParView's): which
    links to keep, dial and drop.
"""

from random import Random
from typing import Callable, ClassVar, List, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pchat.mesh import wire
from p2pchat.mesh.membership.admission import Admission
from p2pchat.mesh.membership.detector import FailureDetector
from p2pchat.mesh.membership.dissemination import Dissemination
from p2pchat.mesh.membership.intake import FRAME_TYPES, Intake
from p2pchat.mesh.membership.merge import Merge
from p2pchat.mesh.membership.own import OwnRow
from p2pchat.mesh.membership.probe import PROBE_FRAMES, Prober
from p2pchat.mesh.membership.rows import ALIVE, SUSPECT
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import IMembershipOutput, Member, MembershipConfig
from p2pchat.mesh.membership.view import ActiveView
from p2pchat.safe import LogLimiter


class Membership:
    """
    One node's view of the network's membership.

    @cvar frame_types: the frame types this object handles.
    @ivar node_id: this node's id.
    @ivar clock: the clock it reads.
    @ivar config: its parameters.
    """

    frame_types: ClassVar[frozenset] = FRAME_TYPES | PROBE_FRAMES
    log = Logger()

    def __init__(
        self,
        node_id: str,
        name: str,
        address: Optional[str],
        clock: IReactorTime,
        output: IMembershipOutput,
        config: MembershipConfig = MembershipConfig(),  # noqa: B008 (frozen)
        rng: Optional[Random] = None,
        incarnation: int = 0,
        signer: Optional[Callable[[bytes], bytes]] = None,
        verify: Optional[Callable[[dict], bool]] = None,
    ):
        """
        @param incarnation: the incarnation to start at.  The node passes
            the wall time in whole seconds, so a restarted node outranks
            its own tombstone at once; with 0 it refutes the tombstone
            when gossip brings it.
        @param signer: signs with this node's key (the node passes
            C{identity.sign}); every row this node gossips about itself
            is signed with it (see L{p2pchat.mesh.membership.rows}).
        @param verify: checks a received row's signature (C{None}:
            L{p2pchat.mesh.membership.rows.verify_row}; a simulation of
            many nodes in one process passes one that remembers answers).
        @raise ValueError: without a signer.
        """
        if signer is None:
            raise ValueError("membership rows must be signed: pass signer")
        self.node_id = node_id
        self.clock = clock
        self.config = config
        self._output = output
        rng = rng if rng is not None else Random()
        log = self.log
        limiter = LogLimiter(clock)
        now = clock.seconds()
        self._own = OwnRow(node_id, name, address, incarnation, config.hidden, signer, log)
        admission = Admission(clock, config.heartbeat_interval_s)
        self._admission = admission
        self._table = MemberTable(config, admission, limiter, log, self._forget_links)
        self._links = Dissemination(self._own, self._table, admission, clock, output, config)
        self._detector = FailureDetector(
            self._table, self._links, output, config, limiter, log, now
        )
        self._intake = Intake(self._own, self._table, admission, limiter, log, verify)
        self._merge = Merge(
            self._own, self._table, self._links, self._detector, admission, output, config,
            limiter, log,
        )
        self._view = ActiveView(
            self._own, self._table, self._links, admission, output, config, rng
        )
        self._prober = Prober(
            node_id, self._table, self._links, self._detector, admission, output, config, rng,
            now,
        )
        self._rng = rng

    def _forget_links(self, node_id: str) -> None:
        self._links.forget(node_id)

    # This node

    @property
    def name(self) -> str:
        """
        This node's display name (change it with L{set_name}).
        """
        return self._own.name

    @property
    def incarnation(self) -> int:
        return self._own.incarnation

    @property
    def heartbeat(self) -> int:
        return self._own.heartbeat

    @property
    def hidden(self) -> bool:
        """
        Whether this node keeps itself out of gossip (see L{set_hidden}).
        """
        return self._own.hidden

    @property
    def dropped_rows(self) -> int:
        """
        Received rows not applied when they came, for being over a budget
        (most are owed: see L{owed_rows}).
        """
        return self._intake.dropped_rows

    @property
    def owed_rows(self) -> int:
        """
        Received rows over a budget, kept to apply as budgets refill.
        """
        return self._intake.owed_rows

    @property
    def address(self) -> Optional[str]:
        """
        Where this node accepts links, or C{None}.
        """
        return self._own.address

    @address.setter
    def address(self, address: Optional[str]) -> None:
        """
        A new address is a new signed statement: it needs a new
        incarnation (a member signs one statement per incarnation).
        """
        if address == self._own.address:
            return
        self._own.address = address
        if len(self._table) or len(self._links):
            self._own.raise_incarnation(self._own.incarnation + 1)
            self._links.mark_self()

    # Inputs

    def link_up(self, peer_id: str, name: str, address: Optional[str], outbound: bool) -> None:
        """
        A link to C{peer_id} finished its handshake (C{name} and C{address}
        are from its hello, and prove nothing but the id).  The whole table
        goes to it at once; its gossip state exists even when the table is
        full.
        """
        if peer_id == self.node_id:
            return
        now = self.clock.seconds()
        record = self._table.get(peer_id)
        if record is None and self._table.room_for_one_more():
            record = Record(peer_id, name, address, 0, ALIVE, 0, now)
            record.advertised = False
            self._table.records[peer_id] = record
            self._output.member_changed(record.member(), None)
        elif record is not None and not record.advertised:
            record.name, record.address = name, address
        self._admission.proven(peer_id)
        if record is not None:
            record.links += 1
            record.last_heard = now
        self._view.linked(record, address)
        self._admission.link_up(peer_id)
        self._links.link_up(peer_id, now, outbound)

    def link_down(self, peer_id: str) -> None:
        """
        A link to C{peer_id} closed.  If it was the last one (and this
        node did not drop it on purpose), the member becomes suspect
        unless another link reaches it within C{probe_timeout_s} (see
        L{p2pchat.mesh.membership.probe}).
        """
        if peer_id not in self._links:
            return
        record = self._table.get(peer_id)
        if record is not None:
            record.links = max(0, record.links - 1)
        link = self._links.release(peer_id)
        if link is None:
            return
        self._admission.link_down(peer_id)
        self._intake.forget_link(peer_id)
        now = self.clock.seconds()
        told = self._prober.unlinked(peer_id)
        dropped = self._view.unlinked(peer_id, link, record, now) or told
        if record is None or record.links:
            return
        if not record.advertised:
            del self._table.records[peer_id]
        elif record.state == ALIVE and not dropped and not self._own.left:
            self._prober.link_lost(record, now)

    def rx_frame(self, peer_id: str, frame: dict) -> None:
        """
        A frame of one of L{frame_types} arrived from C{peer_id} (probes
        are checked by L{p2pchat.mesh.wire.parse_frame}).

        The whole gossip frame is checked (form, and the signature of every row
        that would change a signed part) before any row is applied.  Rows
        over the link's budgets are dropped, not fatal.

        @raise p2pchat.mesh.wire.FrameError: if it is malformed or a row's signature is not
            its member's (a forgery: the node closes the link).
        """
        if frame.get("type") in PROBE_FRAMES:
            if not self._own.left:
                self._prober.rx_probe(peer_id, frame)
            return
        rows = self._intake.check_frame(peer_id, frame)
        if self._own.left:
            return
        self._merge.apply(peer_id, rows, self.clock.seconds())
        # Pass changes on at once, not at the next tick: a change crosses
        # the network in network latencies, not in gossip intervals.
        self._links.flush()

    def heard_from(self, peer_id: str) -> None:
        """
        A linked peer sent a frame (any frame proves it is alive), or this
        node is holding its link (not reading it, so its frames wait
        unread): a member this node is not reading is never blamed for
        its silence (any frame, or a held link, answers a probe).  A
        frozen peer sends nothing and is not held: its probes time out.
        """
        record = self._table.get(peer_id)
        if record is not None and record.links and record.state in (ALIVE, SUSPECT):
            record.last_heard = self.clock.seconds()

    def tick(self) -> None:
        """
        Run timers (probes, suspicion time-outs, pruning, anti-entropy,
        link upkeep) and send each link the rows it has not seen.  The node
        calls this every C{gossip_interval_s}.
        """
        if self._own.left:
            return
        now = self.clock.seconds()
        # A late tick: this node stalled, and refutations may wait unread.
        stalled = self._prober.stalled(now)
        self._prober.tick(now)
        if now >= self._detector.next_check_at and not stalled:
            self._detector.check(now)
        self._release_owed(now)
        self._links.sync(now, self._rng)
        self._view.keep(now)
        self._links.flush(tick=True)

    def _release_owed(self, now: float) -> None:
        """
        Apply the rows links owe (received over a budget) as far as their
        budgets refilled (see L{p2pchat.mesh.membership.intake}).
        """
        intake = self._intake
        for peer_id in intake.owing():
            try:
                rows = intake.release(peer_id)
            except wire.FrameError as e:
                self._output.disconnect(peer_id, str(e))
                continue
            if rows:
                self._merge.apply(peer_id, rows, now, heard=False)

    def leave(self) -> None:
        """
        Leave gracefully: announce C{left} at the next incarnation on every
        link now.  After this the object does nothing more.
        """
        if self._own.left:
            return
        if not self._own.hidden:
            self._announce_left()
        self._own.left = True

    def set_hidden(self, hidden: bool) -> None:
        """
        Hide this node from (or show it in) membership gossip.

        Hiding is announced like a leave (others show it as C{left}), but
        links stay open and gossip is still read and relayed.  Showing
        again raises the incarnation, so others show it C{alive}.
        """
        own = self._own
        if hidden == own.hidden or own.left:
            return
        own.hidden = hidden
        if hidden:
            self._announce_left()
        else:
            own.raise_incarnation(own.incarnation + 1)
        self._links.mark_self()

    def set_name(self, name: str) -> None:
        """
        Change this node's display name; it spreads with a new incarnation.
        """
        own = self._own
        if name == own.name:
            return
        own.name = name
        if not own.left:
            # A new name is a new signed statement: a new incarnation.
            own.raise_incarnation(own.incarnation + 1)
            self._links.mark_self()

    # Queries

    def members(self) -> List[Member]:
        """
        @return: every known member except this node, tombstones included,
            sorted by name then id.
        """
        return self._table.members()

    def member(self, node_id: str) -> Optional[Member]:
        """
        @return: what is known about C{node_id}, or C{None}.
        """
        return self._table.member(node_id)

    def alive_count(self) -> int:
        """
        @return: how many members other than this node are alive.
        """
        return self._table.alive_count()

    def own_row(self) -> dict:
        """
        @return: the row this node gossips about itself, signed.
        """
        return self._own.row()

    def _announce_left(self) -> None:
        own = self._own
        own.raise_incarnation(own.incarnation + 1)
        self._links.announce_left(own.row(leaving=True))
