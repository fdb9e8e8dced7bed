"""
Gossip membership: who is in the network, where they listen, and whether
they are alive, suspect, dead or gone.

L{Membership} is a sans-IO state machine.  It opens no sockets and imports
no reactor: the node feeds it named inputs (L{Membership.link_up},
L{Membership.link_down}, L{Membership.rx_frame}, L{Membership.tick},
L{Membership.leave} ...) and it answers through an L{IMembershipOutput}.
Time comes from an injected L{IReactorTime}, randomness from an injected
L{random.Random}.

The algorithm (see C{docs/membership.md} for the frames and the numbers):

  - B{Dissemination.}  Every member has a row C{(id, incarnation, state,
    heartbeat, name, address)}.  Each node bumps its own heartbeat every
    C{heartbeat_interval_s} and, every tick, sends each linked peer the
    rows that changed since it last told that peer, minus those the peer
    already told us (per-link reconciliation).  A new link gets the whole
    table at once (push-pull: both ends push), and one random link gets it
    again every C{sync_interval_s} (anti-entropy, repairs lost frames).
  - B{Failure detection.}  Heartbeat time-out with suspicion: a member
    whose heartbeat has not advanced for C{failure_timeout_s} becomes
    suspect; suspect for another C{failure_timeout_s} with no heartbeat,
    dead.  Losing the last link to a member is a strong hint: if its
    heartbeat does not advance through other links within
    C{link_loss_grace_s}, it is suspected at once.  Suspect and dead are
    gossiped.  A live node that hears itself suspected or declared dead
    refutes by raising its incarnation.
  - B{Ordering.}  A higher incarnation wins; for equal incarnations the
    state with higher precedence wins (left > dead > suspect > alive) and
    the heartbeat is the larger one.  This merge is a join, so every order
    of deliveries converges to one table.
  - B{Authority.}  Every row is signed by its member (see
    L{p2pchat.mesh.membership.rows}): only the member can raise its incarnation,
    rename, re-address or leave; suspect and dead claims carry its
    signature for the incarnation they name.  Signatures are checked only
    when a signed part changes.  A node linked to a member it heard from
    recently does not believe rumours about it (Lifeguard's local
    confirmation).
  - B{Bounds.}  New members, heartbeats and signature checks per link
    (and signature checks in all) are budgeted, unproven members are
    evicted first when the table is full, and every link gets gossip state
    (L{p2pchat.mesh.membership.admission}).  Gossip goes to a link only while its
    transport takes more (L{IMembershipOutput.ready}), at most
    L{FLUSH_ROWS_PER_TICK} rows per link per tick, proven members first.  Memory: at most
    C{max_members} rows (about 1 KiB each with bookkeeping) plus as many
    remembered leaves (about 150 bytes each), and per link one C{knows}
    entry per member.
  - B{Active view.}  A node keeps about C{max_links} links (HyParView's
    active view), connecting to random alive members when below and
    dropping random extras when above C{max_links + link_slack}.
"""

from dataclasses import dataclass
from random import Random
from typing import Callable, ClassVar, Dict, List, Optional, Set, Tuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

from p2pchat.log.identity import short_id
from p2pchat.mesh.membership.admission import Admission
from p2pchat.mesh.membership.rows import (  # noqa: F401 (re-exported)
    ALIVE,
    DEAD,
    LEFT,
    MAX_HEARTBEAT,
    MAX_INCARNATION,
    MAX_ROWS_PER_FRAME,
    SIGNATURE_HEX_LENGTH,
    STATE_RANK,
    STATES,
    SUSPECT,
    base_state,
    check_row,
    join_keys,
    newer_key,
    sign_row,
    signed_part,
    verify_row,
)
from p2pchat.mesh.membership.types import IMembershipOutput, Member, MembershipConfig  # noqa: F401
from p2pchat.mesh.wire import MAX_LINE_BYTES, FrameError
from p2pchat.safe import LogLimiter, printable

#: Budget for the rows of one sent gossip frame, leaving room for the
#: envelope (the whole line must stay under L{MAX_LINE_BYTES}).
FRAME_BUDGET_BYTES = MAX_LINE_BYTES - 1024
#: Conservative overhead of one encoded row besides its id, name, address
#: and signature: keys, punctuation, two integers of up to 16 digits and
#: the longest state.
ROW_OVERHEAD_BYTES = 96
MAX_RETRY_DOUBLINGS = 4
#: Rows looked at per link per tick, at most: one tick's work stays
#: bounded whatever the table size and the number of changed rows (the
#: rest stay dirty for the next tick).
FLUSH_ROWS_PER_TICK = 500



class _Record:
    """
    One member's row and this node's bookkeeping about it.

    @ivar advertised: whether the member's row came through gossip.  A
        member known only from a link's hello (a hidden node) is shown but
        never gossiped and never timed out.
    @ivar links: open links to it.
    @ivar last_heard: clock time of its last sign of life.
    @ivar state_since: clock time its state last changed.
    @ivar link_lost_at: when our last link to it closed (C{None} when the
        grace check is not pending).
    """

    __slots__ = (
        "node_id", "name", "address", "incarnation", "state", "heartbeat", "sig",
        "advertised", "links", "last_heard", "state_since", "link_lost_at", "_row",
        "_size", "key", "told_inc",
    )

    def __init__(self, node_id, name, address, incarnation, state, heartbeat, now):
        self.node_id = node_id
        self.name = name
        self.address = address
        self.incarnation = incarnation
        self.state = state
        self.heartbeat = heartbeat
        self.sig: Optional[str] = None
        self.advertised = True
        self.links = 0
        self.last_heard = now
        self.state_since = now
        self.link_lost_at: Optional[float] = None
        self._row: Optional[dict] = None
        self._size: Optional[int] = None
        self.key = (incarnation, STATE_RANK[state], heartbeat)
        #: The incarnation of the last rumour passed to the member itself.
        self.told_inc = -1

    def changed(self) -> None:
        """
        Call after changing a gossiped field.
        """
        self._row = None
        self._size = None
        self.key = (self.incarnation, STATE_RANK[self.state], self.heartbeat)

    def row(self) -> dict:
        if self._row is None:
            row = {
                "id": self.node_id,
                "inc": self.incarnation,
                "state": self.state,
                "hb": self.heartbeat,
                "name": self.name,
                "addr": self.address,
            }
            if self.sig is not None:
                row["sig"] = self.sig
            self._row = row
        return self._row

    def size(self) -> int:
        """
        @return: an upper bound on the encoded size of L{row}.
        """
        if self._size is not None:
            return self._size
        size = ROW_OVERHEAD_BYTES + len(self.node_id) + len(self.name.encode("utf-8"))
        if self.address is not None:
            size += len(self.address.encode("utf-8"))
        if self.sig is not None:
            size += SIGNATURE_HEX_LENGTH + 10
        self._size = size
        return size

    def member(self) -> Member:
        return Member(
            self.node_id, self.name, self.address, self.incarnation, self.state,
            self.links > 0, self.last_heard, self.advertised,
        )


class _Link:
    """
    Gossip bookkeeping for the link(s) to one peer.

    @ivar count: open links to the peer.
    @ivar dirty: ids of rows that changed since they were last sent here.
    @ivar knows: per member id, the newest C{(incarnation, rank,
        heartbeat)} exchanged with this peer in either direction.
    @ivar since: when the first of these links came up.
    """

    __slots__ = ("count", "dirty", "knows", "since", "outbound")

    def __init__(self, now: float, outbound: bool):
        self.count = 0
        # Insertion-ordered (a dict used as a set): rows go out, and are
        # learned, in the same order whatever the process's hash seed, so a
        # simulation with a given seed is one run, not one per hash seed.
        self.dirty: Dict[str, None] = {}
        self.knows: Dict[str, Tuple[int, int, int]] = {}
        self.since = now
        self.outbound = outbound


@dataclass
class _Attempt:
    at: float
    failures: int = 0
    #: Whether a dial may still be under way (else only a back-off).
    pending: bool = True


class Membership:
    """
    One node's view of the network's membership.

    @cvar frame_types: the frame types this object handles.
    @ivar node_id: this node's id.
    @ivar name: this node's display name.
    @ivar address: where this node accepts links, or C{None}.
    @ivar incarnation: this node's incarnation.
    @ivar heartbeat: this node's heartbeat counter.
    @ivar hidden: whether this node keeps itself out of gossip.
    @ivar errors: how many received frames were rejected.
    """

    frame_types: ClassVar[frozenset] = frozenset({"gossip"})
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
    ):
        """
        @param incarnation: the incarnation to start at.  The node passes
            the wall time in whole seconds, so a restarted node outranks
            its own tombstone at once; with 0 it refutes the tombstone
            when gossip brings it.
        @param signer: signs with this node's key (the node passes
            C{identity.sign}); every row this node gossips about itself
            is signed with it (see L{p2pchat.mesh.membership.rows}).
        @raise ValueError: without a signer.
        """
        if signer is None:
            raise ValueError("membership rows must be signed: pass signer")
        self.node_id = node_id
        self.name = name
        self._address = address
        self.clock = clock
        self._output = output
        self.config = config
        self._rng = rng if rng is not None else Random()
        self._signer = signer
        self.incarnation = incarnation
        self.heartbeat = 0
        self.hidden = config.hidden
        self.errors = 0
        self._left = False
        self._own_signed: Optional[Tuple[tuple, str]] = None
        self._records: Dict[str, _Record] = {}
        self._links: Dict[str, _Link] = {}
        self._attempts: Dict[str, _Attempt] = {}
        self._dropping: Set[str] = set()
        self._admission = Admission(clock, config.heartbeat_interval_s)
        #: Members whose signed leave was pruned, with its incarnation, so
        #: a replay of an older signed alive row cannot bring them back;
        #: oldest first, at most C{max_members}.
        self._gone: Dict[str, int] = {}
        self._limiter = LogLimiter(clock)
        self.dropped_rows = 0
        now = clock.seconds()
        self._next_heartbeat_at = now + config.heartbeat_interval_s
        self._next_sync_at = now + config.sync_interval_s
        self._next_check_at = now

    @property
    def address(self) -> Optional[str]:
        return self._address

    @address.setter
    def address(self, address: Optional[str]) -> None:
        """
        A new address is a new signed statement: it needs a new
        incarnation (a member signs one statement per incarnation).
        """
        if address == self._address:
            return
        self._address = address
        if self._records or self._links:
            self._raise_incarnation(self.incarnation + 1)
            self._mark_self()

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
        record = self._records.get(peer_id)
        if record is None and self._room_for_one_more():
            record = _Record(peer_id, name, address, 0, ALIVE, 0, now)
            record.advertised = False
            self._records[peer_id] = record
            self._output.member_changed(record.member(), None)
        elif record is not None and not record.advertised:
            record.name, record.address = name, address
        self._admission.proven(peer_id)
        if record is not None:
            record.links += 1
            record.last_heard = now
            record.link_lost_at = None
            self._forget_attempt(record.address)
        self._forget_attempt(address)
        self._admission.link_up(peer_id)
        link = self._links.get(peer_id)
        if link is None:
            link = self._links[peer_id] = _Link(now, outbound)
            link.dirty.update(dict.fromkeys(self._records))
            link.dirty[self.node_id] = None
            if self._output.ready(peer_id):
                self._flush(peer_id, link)
        link.count += 1

    def link_down(self, peer_id: str) -> None:
        """
        A link to C{peer_id} closed.  If it was the last one and the member
        is not heard from through other links within C{link_loss_grace_s},
        it becomes suspect.
        """
        link = self._links.get(peer_id)
        if link is None:
            return
        link.count -= 1
        record = self._records.get(peer_id)
        if record is not None:
            record.links = max(0, record.links - 1)
        if link.count > 0:
            return
        del self._links[peer_id]
        self._admission.link_down(peer_id)
        now = self.clock.seconds()
        if link.outbound and record is not None and now - link.since < self.config.connect_retry_s:
            # Refused or closed at once (a full node takes the handshake,
            # then says no): back off as after a failed attempt, or we
            # would redial it every tick.
            self._failed_attempt(record.address, now, pending=False)
        dropped = peer_id in self._dropping
        self._dropping.discard(peer_id)
        if record is None or record.links:
            return
        if not record.advertised:
            del self._records[peer_id]
        elif record.state == ALIVE and not dropped and not self._left:
            now = self.clock.seconds()
            record.link_lost_at = now
            self._next_check_at = min(
                self._next_check_at, now + self.config.link_loss_grace_s
            )

    def rx_frame(self, peer_id: str, frame: dict) -> None:
        """
        A frame of one of L{frame_types} arrived from C{peer_id}.

        The whole frame is checked (form, and the signature of every row
        that would change a signed part) before any row is applied.  Rows
        over the link's budgets are dropped, not fatal.

        @raise FrameError: if it is malformed or a row's signature is not
            its member's (a forgery: the node closes the link).
        """
        try:
            rows = self._check_frame(peer_id, frame)
        except FrameError:
            self.errors += 1
            raise
        if self._left:
            return
        now = self.clock.seconds()
        records = self._records
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
                # The common case: a heartbeat, perhaps new.
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
                        record.link_lost_at = None
                    record.changed()
                    self._mark(record.node_id)
            else:
                self._rx_row(peer_id, row, now)
        sender = self._records.get(peer_id)
        if sender is not None and sender.state in (ALIVE, SUSPECT):
            sender.last_heard = now

    def heard_from(self, peer_id: str) -> None:
        """
        A linked peer sent a frame (any frame proves it is alive), or this
        node is holding its link (not reading it, so its frames wait
        unread): a member this node is not reading is never blamed for
        its silence.  A frozen peer sends nothing and is not held; the
        link's keep-alive closes it and the usual time-outs follow.
        """
        record = self._records.get(peer_id)
        if record is not None and record.links and record.state in (ALIVE, SUSPECT):
            record.last_heard = self.clock.seconds()
            record.link_lost_at = None

    def tick(self) -> None:
        """
        Run timers (heartbeat, failure detection, pruning, anti-entropy,
        link upkeep) and send each link the rows it has not seen.  The node
        calls this every C{gossip_interval_s}.
        """
        if self._left:
            return
        now = self.clock.seconds()
        if now >= self._next_heartbeat_at:
            self._next_heartbeat_at = max(
                self._next_heartbeat_at + self.config.heartbeat_interval_s, now
            )
            self.heartbeat = min(self.heartbeat + 1, MAX_HEARTBEAT)
            self._mark_self()
        if now >= self._next_check_at:
            self._check(now)
        if now >= self._next_sync_at and self._links:
            self._next_sync_at = now + self.config.sync_interval_s
            peer_id = self._rng.choice(sorted(self._links))
            link = self._links[peer_id]
            link.knows.clear()
            link.dirty.update(dict.fromkeys(self._records))
            link.dirty[self.node_id] = None
        self._keep_links(now)
        for peer_id, link in list(self._links.items()):
            # Gossip waits while the link's transport is full (the peer
            # does not read): its rows stay dirty, bounded by the table.
            if link.dirty and self._output.ready(peer_id):
                self._flush(peer_id, link)

    def leave(self) -> None:
        """
        Leave gracefully: announce C{left} at the next incarnation on every
        link now.  After this the object does nothing more.
        """
        if self._left:
            return
        if not self.hidden:
            self._announce_left()
        self._left = True

    def set_hidden(self, hidden: bool) -> None:
        """
        Hide this node from (or show it in) membership gossip.

        Hiding is announced like a leave (others show it as C{left}), but
        links stay open and gossip is still read and relayed.  Showing
        again raises the incarnation, so others show it C{alive}.
        """
        if hidden == self.hidden or self._left:
            return
        self.hidden = hidden
        if hidden:
            self._announce_left()
        else:
            self._raise_incarnation(self.incarnation + 1)
        self._mark_self()

    def set_name(self, name: str) -> None:
        """
        Change this node's display name; it spreads with a new incarnation.
        """
        if name == self.name:
            return
        self.name = name
        if not self._left:
            # A new name is a new signed statement: a new incarnation.
            self._raise_incarnation(self.incarnation + 1)
            self._mark_self()

    # Queries

    def members(self) -> List[Member]:
        """
        @return: every known member except this node, tombstones included,
            sorted by name then id.
        """
        records = sorted(self._records.values(), key=lambda r: (r.name, r.node_id))
        return [record.member() for record in records]

    def member(self, node_id: str) -> Optional[Member]:
        """
        @return: what is known about C{node_id}, or C{None}.
        """
        record = self._records.get(node_id)
        return None if record is None else record.member()

    def alive_count(self) -> int:
        """
        @return: how many members other than this node are alive.
        """
        return sum(1 for record in self._records.values() if record.state == ALIVE)

    def linked_peers(self) -> List[str]:
        """
        @return: the ids of the peers this node has links to, sorted.
        """
        return sorted(self._links)

    def own_row(self, leaving: bool = False) -> dict:
        """
        @return: the row this node gossips about itself, signed.  It is
            signed again only when its signed part changes.
        """
        state = LEFT if (leaving or self._left or self.hidden) else ALIVE
        statement = (self.incarnation, self.name, self.address, state)
        if self._own_signed is None or self._own_signed[0] != statement:
            sig = sign_row(self._signer, self.node_id, *statement)
            self._own_signed = (statement, sig)
        return {
            "id": self.node_id,
            "inc": self.incarnation,
            "state": state,
            "hb": self.heartbeat,
            "name": self.name,
            "addr": self.address,
            "sig": self._own_signed[1],
        }

    # Receiving

    def _check_frame(self, peer_id: str, frame: dict) -> list:
        """
        @return: the rows of C{frame} to apply: well-formed, authentic,
            and within the link's budgets.
        @raise FrameError: if a row is malformed or forged.
        """
        if frame.get("type") not in self.frame_types:
            raise FrameError(f"membership cannot handle frame type {frame.get('type')!r}")
        rows = frame.get("rows")
        if not isinstance(rows, list):
            raise FrameError("gossip.rows is not a list")
        if len(rows) > MAX_ROWS_PER_FRAME:
            raise FrameError(f"gossip frame has more than {MAX_ROWS_PER_FRAME} rows")
        records = self._records
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
        @raise FrameError: if the signature is not the member's.
        """
        node_id = row["id"]
        record = self._records.get(node_id)
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
        elif node_id == self.node_id:
            if row["inc"] < self.incarnation or self.hidden:
                return False
            own = self.own_row()
            if row["inc"] == own["inc"] and signed_part(row) == signed_part(own):
                return True
        else:
            gone = self._gone.get(node_id)
            if gone is not None and row["inc"] <= gone:
                return False
            if record is None and not self._admission.may_learn(peer_id):
                self._over_budget(peer_id, "new members")
                return False
        statement = (node_id,) + signed_part(row)
        if statement in verified:
            return True
        if not self._admission.may_verify(peer_id):
            self._over_budget(peer_id, "signature checks")
            return False
        if not verify_row(row):
            raise FrameError(
                f"gossip row for {short_id(node_id)} at incarnation {row['inc']}: "
                f"signature is not its member's"
            )
        verified.add(statement)
        return True

    def _over_budget(self, peer_id: str, what: str) -> None:
        self._limiter.log(
            what, self.log.warn,
            "dropping gossip rows from {peer}: over its budget of {what}",
            peer=short_id(peer_id), what=what,
        )

    def _rx_row(self, peer_id: str, row: dict, now: float) -> None:
        node_id = row["id"]
        incarnation = row["inc"]
        state = row["state"]
        rank = STATE_RANK[state]
        key = (incarnation, rank, row["hb"])
        link = self._links.get(peer_id)
        record = self._records.get(node_id)
        if record is None and node_id != self.node_id and not self._learn(peer_id, row, now):
            return  # not kept: keep no per-link state about it either
        if link is not None:
            link.knows[node_id] = join_keys(key, link.knows.get(node_id))
        if node_id == self.node_id:
            self._rx_about_self(peer_id, row)
            return
        if record is None:
            return
        old_state = record.state
        if not record.advertised or incarnation > record.incarnation:
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
                record.link_lost_at = None
            elif state != LEFT:
                self._rumour(record, row, now)
        elif incarnation == record.incarnation:
            if (record.sig, record.name, record.address, base_state(record.state)) != (
                row["sig"], row["name"], row["addr"], base_state(state)
            ):
                # Two statements signed for one incarnation (or a left
                # row against a tombstone): keep the one we hold.
                return
            changed = False
            if rank > STATE_RANK[record.state]:
                changed = self._rumour(record, row, now)
            if row["hb"] > record.heartbeat:
                record.heartbeat = row["hb"]
                if record.state in (ALIVE, SUSPECT):
                    record.last_heard = now
                    record.link_lost_at = None
                changed = True
            if not changed:
                return
        else:
            # The peer has an older row than ours: tell it ours (even if we
            # believed we had, the frame was lost or crossed this one).
            if link is not None:
                link.knows[node_id] = key
                link.dirty[node_id] = None
            return
        record.changed()
        self._mark(node_id)
        if record.state != old_state:
            self._state_changed(record, old_state, now)

    def _rumour(self, record: "_Record", row: dict, now: float) -> bool:
        """
        Someone claims C{record} is suspect or dead at its current
        incarnation.  Local confirmation (Lifeguard): a node linked to the
        member that heard from it within C{failure_timeout_s} keeps it
        alive and passes the rumour to the member alone (once per
        incarnation), which refutes it; a node that saw its heartbeat
        advance that recently takes C{dead} only as C{suspect}.

        @return: whether the state changed.
        """
        state = row["state"]
        fresh = now - record.last_heard < self.config.failure_timeout_s
        if state in (SUSPECT, DEAD) and fresh:
            if record.links:
                if record.told_inc != record.incarnation and record.node_id in self._links:
                    record.told_inc = record.incarnation
                    self._output.send(record.node_id, {"type": "gossip", "rows": [row]})
                return False
            if state == DEAD:
                state = SUSPECT
        if STATE_RANK[state] <= STATE_RANK[record.state]:
            return False
        record.state = state
        return True

    def _learn(self, peer_id: str, row: dict, now: float) -> bool:
        """
        @return: whether the member was added (there was room).
        """
        if not self._room_for_one_more():
            return False
        record = _Record(
            row["id"], row["name"], row["addr"], row["inc"], row["state"], row["hb"], now
        )
        record.sig = row["sig"]
        self._records[record.node_id] = record
        self._gone.pop(record.node_id, None)
        if peer_id != record.node_id:
            self._admission.unproven(record.node_id)
        self._mark(record.node_id)
        if record.state != ALIVE:
            self._next_check_at = min(self._next_check_at, now + self.config.failure_timeout_s)
        self._output.member_changed(record.member(), None)
        return True

    def _rx_about_self(self, peer_id: str, row: dict) -> None:
        """
        Refute a rumour that this node is suspect, dead or left, a
        heartbeat ahead of ours, or a row of ours from before a restart:
        raise the incarnation past it and sign the new row.
        """
        if self.hidden:
            return
        incarnation = row["inc"]
        if incarnation < self.incarnation:
            return
        if (
            incarnation == self.incarnation
            and row["state"] == ALIVE
            and row["hb"] <= self.heartbeat
            and signed_part(row) == signed_part(self.own_row())
        ):
            return
        self._limiter.log(
            "refute", self.log.info,
            "refuting rumour from {peer} that we are {state} at incarnation {inc}",
            peer=short_id(peer_id), state=row["state"], inc=incarnation,
        )
        self._raise_incarnation(incarnation + 1)
        self._mark_self()

    # Timers

    def _check(self, now: float) -> None:
        """
        Suspect silent members, declare long-suspect ones dead, prune old
        tombstones, and note when the next of these can be due.
        """
        timeout = self.config.failure_timeout_s
        grace = self.config.link_loss_grace_s
        next_at = now + timeout
        prune = []
        for record in list(self._records.values()):
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
                    self._set_state(record, DEAD, now)
                else:
                    next_at = min(next_at, due)
            elif record.links == 0:
                due = record.state_since + self.config.tombstone_s
                if now >= due:
                    prune.append(record.node_id)
                else:
                    next_at = min(next_at, due)
        for node_id in prune:
            record = self._records[node_id]
            if record.state == LEFT:
                self._gone[node_id] = record.incarnation
                while len(self._gone) > self.config.max_members:
                    del self._gone[next(iter(self._gone))]
            self._forget(node_id)
        self._next_check_at = next_at

    def _forget(self, node_id: str) -> None:
        del self._records[node_id]
        self._admission.proven(node_id)
        for link in self._links.values():
            link.knows.pop(node_id, None)
            link.dirty.pop(node_id, None)

    def _suspect(self, record: _Record, now: float, why: str) -> None:
        self._limiter.log(
            "suspect", self.log.info,
            "suspecting {name} ({who}): {why}",
            name=printable(record.name), who=short_id(record.node_id), why=why,
        )
        record.link_lost_at = None
        self._set_state(record, SUSPECT, now)

    def _set_state(self, record: _Record, state: str, now: float) -> None:
        old_state = record.state
        record.state = state
        record.changed()
        self._mark(record.node_id)
        self._state_changed(record, old_state, now)

    def _state_changed(self, record: _Record, old_state: str, now: float) -> None:
        record.state_since = now
        if record.state != ALIVE:
            self._next_check_at = min(self._next_check_at, now + self.config.failure_timeout_s)
        self._output.member_changed(record.member(), old_state)

    # Links

    def _keep_links(self, now: float) -> None:
        """
        Connect to random alive members while below C{max_links} (counting
        attempts still pending); drop one random link while above
        C{max_links + link_slack}.
        """
        config = self.config
        self._dropping &= set(self._links)
        pending = sum(
            1 for attempt in self._attempts.values()
            if attempt.pending and now < attempt.at + config.connect_retry_s
        )
        wanted = min(config.max_links - len(self._links) - pending, config.connects_per_tick)
        if wanted > 0:
            candidates = [
                record for record in self._records.values()
                if record.state == ALIVE
                and record.advertised
                and record.address is not None
                and record.address != self.address
                and not record.links
                and self._may_try(record.address, now)
            ]
            # Proven members first: addresses only gossip vouches for
            # (perhaps fakes) must not eat the connection attempts.
            for record in self._admission.choose(candidates, wanted, self._rng):
                self._failed_attempt(record.address, now)
                self._output.connect(record.address)
        # Count connections, not peers: two links to one peer (both ends
        # dialled at once) are two of the links /status shows.
        connections = sum(
            link.count for peer_id, link in self._links.items() if peer_id not in self._dropping
        )
        excess = connections - config.max_links - config.link_slack
        if excess > 0:
            settled = [
                peer_id for peer_id, link in self._links.items()
                if peer_id not in self._dropping
                and now - link.since >= config.gossip_interval_s * 5
            ]
            # A peer linked twice goes first: closing it frees two links.
            doubled = [peer_id for peer_id in settled if self._links[peer_id].count > 1]
            if settled:
                peer_id = self._rng.choice(sorted(doubled or settled))
                self._dropping.add(peer_id)
                self._output.disconnect(
                    peer_id, f"more than {config.max_links + config.link_slack} links"
                )
        for address, attempt in list(self._attempts.items()):
            if now >= attempt.at + config.connect_retry_s * 2**MAX_RETRY_DOUBLINGS:
                del self._attempts[address]

    def _may_try(self, address: str, now: float) -> bool:
        attempt = self._attempts.get(address)
        if attempt is None:
            return True
        wait_s = self.config.connect_retry_s * 2 ** min(attempt.failures, MAX_RETRY_DOUBLINGS)
        return now >= attempt.at + wait_s

    def _failed_attempt(self, address: Optional[str], now: float, pending: bool = True) -> None:
        """
        Note an attempt to reach C{address} (it counts as failed until a
        link to it lasts; see L{link_down}).
        """
        if address is None:
            return
        attempt = self._attempts.get(address)
        if attempt is None:
            self._attempts[address] = _Attempt(now, pending=pending)
        else:
            attempt.at = now
            attempt.failures += 1
            attempt.pending = pending

    def _forget_attempt(self, address: Optional[str]) -> None:
        if address is not None:
            self._attempts.pop(address, None)

    # Sending

    def _mark(self, node_id: str) -> None:
        for link in self._links.values():
            link.dirty[node_id] = None

    def _mark_self(self) -> None:
        self._mark(self.node_id)

    def _flush(self, peer_id: str, link: _Link) -> None:
        """
        Send C{peer_id} the rows in C{link.dirty} that it does not know,
        in frames that fit in one line: at most L{FLUSH_ROWS_PER_TICK} of
        them, this node's own and proven members' first (a receiver
        spends its new-member budget on what comes first).
        """
        rows: List[dict] = []
        size = 0
        records = self._records
        knows = link.knows
        for node_id in self._admission.take_dirty(link.dirty, FLUSH_ROWS_PER_TICK):
            if node_id == self.node_id:
                if self.hidden or self._left:
                    continue
                row = self.own_row()
                row_size = ROW_OVERHEAD_BYTES + 300 + SIGNATURE_HEX_LENGTH * 2
                key = (row["inc"], STATE_RANK[row["state"]], row["hb"])
            else:
                record = records.get(node_id)
                if record is None:
                    continue
                if record.state != ALIVE and not self._gossipable(record):
                    continue
                if not record.advertised:
                    continue
                key = record.key
                known = knows.get(node_id)
                if known is not None and not (
                    key[0] > known[0]
                    or (key[0] == known[0] and (key[1] > known[1] or key[2] > known[2]))
                ):
                    continue
                knows[node_id] = key
                row = record.row()
                row_size = record.size()
                if rows and size + row_size > FRAME_BUDGET_BYTES:
                    self._output.send(peer_id, {"type": "gossip", "rows": rows})
                    rows, size = [], 0
                rows.append(row)
                size += row_size
                continue
            if not newer_key(key, knows.get(node_id)):
                continue
            knows[node_id] = key
            if rows and size + row_size > FRAME_BUDGET_BYTES:
                self._output.send(peer_id, {"type": "gossip", "rows": rows})
                rows, size = [], 0
            rows.append(row)
            size += row_size
        if rows:
            self._output.send(peer_id, {"type": "gossip", "rows": rows})

    def _gossipable(self, record: _Record) -> bool:
        """
        Rows of members known only by a link are not gossiped, nor
        tombstones older than half their life (so pruned tombstones do not
        come back).
        """
        if not record.advertised:
            return False
        if record.state in (DEAD, LEFT):
            return self.clock.seconds() - record.state_since < self.config.tombstone_s / 2
        return True

    def _announce_left(self) -> None:
        self._raise_incarnation(self.incarnation + 1)
        row = self.own_row(leaving=True)
        for peer_id in sorted(self._links):
            self._links[peer_id].knows[self.node_id] = (row["inc"], STATE_RANK[LEFT], row["hb"])
            self._output.send(peer_id, {"type": "gossip", "rows": [row]})

    def _raise_incarnation(self, incarnation: int) -> None:
        if incarnation > MAX_INCARNATION:
            self.log.error("incarnation would pass 2**53; cannot refute")
            return
        self.incarnation = incarnation

    def _room_for_one_more(self) -> bool:
        """
        @return: whether one more member fits, after evicting the oldest
            unproven member if the table is full.
        """
        if len(self._records) < self.config.max_members:
            return True
        evict = self._admission.evictable()
        if evict is not None:
            self._forget(evict)
            self._limiter.log(
                "evict", self.log.warn,
                "membership table full ({count} members); evicting unproven members",
                count=len(self._records) + 1,
            )
            return True
        self._limiter.log(
            "full", self.log.warn,
            "membership table full ({count} members), none unproven; ignoring new members",
            count=len(self._records),
        )
        return False


