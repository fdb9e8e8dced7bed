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
  - B{Active view.}  A node keeps about C{max_links} links (HyParView's
    active view), connecting to random alive members when below and
    dropping random extras when above C{max_links + link_slack}.
"""

from dataclasses import dataclass
from random import Random
from typing import Callable, ClassVar, Dict, List, Optional, Set, Tuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from p2pchat.entry import validate_name
from p2pchat.identity import HEX_DIGITS, is_node_id, short_id, verify_signature
from p2pchat.wire import MAX_LINE_BYTES, FrameError, valid_address

ALIVE = "alive"
SUSPECT = "suspect"
DEAD = "dead"
LEFT = "left"
STATES = (ALIVE, SUSPECT, DEAD, LEFT)
#: For equal incarnations, the state with the higher rank wins.
STATE_RANK = {ALIVE: 0, SUSPECT: 1, DEAD: 2, LEFT: 3}

MAX_INCARNATION = 2**53
MAX_HEARTBEAT = 2**53
#: A row may raise a known member's incarnation by at most this much; a
#: larger jump is ignored (with a log line).
MAX_INCARNATION_JUMP = 2**32
#: Rows in one received gossip frame; a 64 KiB line cannot hold more.
MAX_ROWS_PER_FRAME = 1000
#: Budget for the rows of one sent gossip frame, leaving room for the
#: envelope (the whole line must stay under L{MAX_LINE_BYTES}).
FRAME_BUDGET_BYTES = MAX_LINE_BYTES - 1024
#: Conservative overhead of one encoded row besides its id, name, address
#: and signature: keys, punctuation, two integers of up to 16 digits and
#: the longest state.
ROW_OVERHEAD_BYTES = 96
SIGNATURE_HEX_LENGTH = 128
LEAVE_CONTEXT = b"p2pchat-left-v1\n"
MAX_RETRY_DOUBLINGS = 4



@dataclass
class Member:
    """
    What this node knows about another node, as C{/peers} shows it.

    @ivar node_id: the member's id.
    @ivar name: its display name.
    @ivar address: where it accepts links (C{host:port}), or C{None} for
        an outbound-only member (reachable through a relay).
    @ivar incarnation: its incarnation number.
    @ivar state: C{alive}, C{suspect}, C{dead} or C{left}.
    @ivar linked: whether this node has a link to it.
    @ivar last_heard: clock time it last showed a sign of life (its
        heartbeat or incarnation advanced, or it sent us a frame).
    """

    node_id: str
    name: str
    address: Optional[str]
    incarnation: int
    state: str
    linked: bool
    last_heard: float


class IMembershipOutput(Interface):
    """
    What L{Membership} asks the node to do.
    """

    def send(peer_id: str, frame: dict) -> None:
        """
        Send C{frame} on our link to C{peer_id} (there is one).
        """

    def connect(address: str) -> None:
        """
        Open an outbound link to C{address} (C{host:port}).
        """

    def disconnect(peer_id: str, reason: str) -> None:
        """
        Close our link(s) to C{peer_id}, logging C{reason}.
        """

    def member_changed(member: Member, old_state: Optional[str]) -> None:
        """
        C{member} was learned (C{old_state} is C{None}) or changed state.
        """


@dataclass(frozen=True)
class MembershipConfig:
    """
    Membership parameters.

    @ivar max_links: the active view: how many links a node keeps.
    @ivar failure_timeout_s: heartbeat silent this long: suspect; suspect
        and silent as long again: dead.
    @ivar gossip_interval_s: how often the node calls L{Membership.tick}.
    @ivar heartbeat_interval_s: how often a node bumps its heartbeat.
    @ivar tombstone_s: dead and left members are kept this long.
    @ivar hidden: start hidden (not advertised in gossip).
    @ivar link_slack: inbound links may take a node this far above
        C{max_links} before it drops extras.
    @ivar sync_interval_s: how often the whole table is pushed to one
        random link.
    @ivar link_loss_grace_s: after our last link to a member closes, its
        heartbeat must advance within this long or it is suspected.
    @ivar connect_retry_s: the least time between two connection attempts
        to one address; it doubles (up to 16 times) while they fail.
    @ivar connects_per_tick: new connection attempts per tick, at most.
    @ivar max_members: members (tombstones included) this node keeps.
    """

    max_links: int = 5
    failure_timeout_s: float = 4.0
    gossip_interval_s: float = 0.2
    heartbeat_interval_s: float = 1.0
    tombstone_s: float = 300.0
    hidden: bool = False
    link_slack: int = 2
    sync_interval_s: float = 30.0
    link_loss_grace_s: float = 2.0
    connect_retry_s: float = 5.0
    connects_per_tick: int = 1
    max_members: int = 10_000


def leave_statement(node_id: str, incarnation: int) -> bytes:
    """
    @return: the bytes a node signs to announce that it left (or hid) at
        C{incarnation}.
    """
    return LEAVE_CONTEXT + f"{node_id} {incarnation}".encode("ascii")


def _is_int(value: object, maximum: int) -> bool:
    return type(value) is int and 0 <= value <= maximum


def _check_row(row: object, known: Dict[str, "_Record"]) -> None:
    """
    Check the form of one gossip row.  The id, name and address of a row
    that match a known member's were checked when it was learned.

    @param known: the members known, by id.
    @raise FrameError: naming the problem.
    """
    if type(row) is not dict:
        raise FrameError("gossip row is not an object")
    node_id = row.get("id")
    if type(node_id) is not str:
        raise FrameError("gossip row id is not a node id")
    record = known.get(node_id)
    if record is None or record.name != row.get("name") or record.address != row.get("addr"):
        if not is_node_id(node_id):
            raise FrameError("gossip row id is not a node id")
        if not validate_name(row.get("name")):
            raise FrameError(f"gossip row for {short_id(node_id)}: name is not a valid name")
        if "addr" not in row or not valid_address(row["addr"]):
            raise FrameError(
                f"gossip row for {short_id(node_id)}: addr is not a printable string or null"
            )
    if not _is_int(row.get("inc"), MAX_INCARNATION):
        raise FrameError(
            f"gossip row for {short_id(node_id)}: inc is not an integer in 0..2**53"
        )
    state = row.get("state")
    if type(state) is not str or state not in STATE_RANK:
        raise FrameError(
            f"gossip row for {short_id(node_id)}: impossible state {str(state)[:20]!r}"
        )
    if not _is_int(row.get("hb"), MAX_HEARTBEAT):
        raise FrameError(f"gossip row for {short_id(node_id)}: hb is not an integer in 0..2**53")
    sig = row.get("sig")
    if sig is not None:
        if state != LEFT:
            raise FrameError(f"gossip row for {short_id(node_id)}: sig on a {state} row")
        if not (
            type(sig) is str and len(sig) == SIGNATURE_HEX_LENGTH and not sig.strip(HEX_DIGITS)
        ):
            raise FrameError(f"gossip row for {short_id(node_id)}: sig is not 128 hex digits")


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
        "_size", "key",
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
            self.links > 0, self.last_heard,
        )


def _newer(key: Tuple[int, int, int], known: Optional[Tuple[int, int, int]]) -> bool:
    """
    @return: whether a row with C{key} tells a peer that knows C{known}
        something new.
    """
    if known is None or key[0] > known[0]:
        return True
    return key[0] == known[0] and (key[1] > known[1] or key[2] > known[2])


def _join(
    key: Tuple[int, int, int], known: Optional[Tuple[int, int, int]]
) -> Tuple[int, int, int]:
    if known is None or key[0] > known[0]:
        return key
    if key[0] < known[0]:
        return known
    return (key[0], max(key[1], known[1]), max(key[2], known[2]))


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
        self.dirty: Set[str] = set()
        self.knows: Dict[str, Tuple[int, int, int]] = {}
        self.since = now
        self.outbound = outbound


@dataclass
class _Attempt:
    at: float
    failures: int = 0


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
        @param signer: signs a leave statement with this node's key (the
            node passes C{identity.sign}).  Without it leave notices are
            unsigned, and only direct neighbours accept them.
        """
        self.node_id = node_id
        self.name = name
        self.address = address
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
        self._own_sig: Optional[str] = None
        self._records: Dict[str, _Record] = {}
        self._links: Dict[str, _Link] = {}
        self._attempts: Dict[str, _Attempt] = {}
        self._dropping: Set[str] = set()
        now = clock.seconds()
        self._next_heartbeat_at = now + config.heartbeat_interval_s
        self._next_sync_at = now + config.sync_interval_s
        self._next_check_at = now
        self._full_warned = False

    # Inputs

    def link_up(self, peer_id: str, name: str, address: Optional[str], outbound: bool) -> None:
        """
        A link to C{peer_id} finished its handshake (C{name} and C{address}
        are from its hello).  The whole table goes to it at once.
        """
        if peer_id == self.node_id:
            return
        now = self.clock.seconds()
        record = self._records.get(peer_id)
        if record is None:
            if not self._room_for_one_more():
                self._forget_attempt(address)
                return
            record = _Record(peer_id, name, address, 0, ALIVE, 0, now)
            record.advertised = False
            self._records[peer_id] = record
            self._output.member_changed(record.member(), None)
        elif not record.advertised:
            record.name, record.address = name, address
        record.links += 1
        record.last_heard = now
        record.link_lost_at = None
        self._forget_attempt(address)
        self._forget_attempt(record.address)
        link = self._links.get(peer_id)
        if link is None:
            link = self._links[peer_id] = _Link(now, outbound)
            link.dirty.update(self._records)
            link.dirty.add(self.node_id)
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

        The whole frame is checked before any row is applied.

        @raise FrameError: if it is malformed, or carries a leave notice
            that its member did not sign (or send us itself).
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
            link.dirty.update(self._records)
            link.dirty.add(self.node_id)
        self._keep_links(now)
        for peer_id, link in list(self._links.items()):
            if link.dirty:
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
            self._own_sig = None
            self._raise_incarnation(self.incarnation + 1)
        self._mark_self()

    def set_name(self, name: str) -> None:
        """
        Change this node's display name; it spreads with a new incarnation.
        """
        if name == self.name:
            return
        self.name = name
        if not self.hidden and not self._left:
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

    def own_row(self) -> dict:
        """
        @return: the row this node gossips about itself.
        """
        row = {
            "id": self.node_id,
            "inc": self.incarnation,
            "state": LEFT if (self._left or self.hidden) else ALIVE,
            "hb": self.heartbeat,
            "name": self.name,
            "addr": self.address,
        }
        if row["state"] == LEFT and self._own_sig is not None:
            row["sig"] = self._own_sig
        return row

    # Receiving

    def _check_frame(self, peer_id: str, frame: dict) -> list:
        if frame.get("type") not in self.frame_types:
            raise FrameError(f"membership cannot handle frame type {frame.get('type')!r}")
        rows = frame.get("rows")
        if not isinstance(rows, list):
            raise FrameError("gossip.rows is not a list")
        if len(rows) > MAX_ROWS_PER_FRAME:
            raise FrameError(f"gossip frame has more than {MAX_ROWS_PER_FRAME} rows")
        for row in rows:
            _check_row(row, self._records)
            if row["state"] == LEFT:
                self._check_leave_authority(peer_id, row)
        return rows

    def _check_leave_authority(self, peer_id: str, row: dict) -> None:
        """
        Only a member may say it left: by a signature over
        L{leave_statement}, or (unsigned) on its own direct link.

        @raise FrameError: otherwise.
        """
        node_id = row["id"]
        sig = row.get("sig")
        if sig is None:
            if peer_id != node_id:
                raise FrameError(
                    f"unsigned left notice for {short_id(node_id)} relayed by "
                    f"{short_id(peer_id)}: only a member may announce its own leave"
                )
            return
        record = self._records.get(node_id)
        if (
            record is not None
            and record.state == LEFT
            and record.incarnation == row["inc"]
            and record.sig == sig
        ):
            return
        if node_id == self.node_id and row["inc"] == self.incarnation and sig == self._own_sig:
            return
        if not verify_signature(node_id, leave_statement(node_id, row["inc"]), bytes.fromhex(sig)):
            raise FrameError(
                f"left notice for {short_id(node_id)} from {short_id(peer_id)} "
                f"has a bad signature"
            )

    def _rx_row(self, peer_id: str, row: dict, now: float) -> None:
        node_id = row["id"]
        incarnation = row["inc"]
        state = row["state"]
        rank = STATE_RANK[state]
        key = (incarnation, rank, row["hb"])
        link = self._links.get(peer_id)
        if link is not None:
            link.knows[node_id] = _join(key, link.knows.get(node_id))
        if node_id == self.node_id:
            self._rx_about_self(peer_id, row)
            return
        record = self._records.get(node_id)
        if record is None:
            self._learn(row, now)
            return
        if incarnation > record.incarnation + MAX_INCARNATION_JUMP and record.advertised:
            self.log.warn(
                "ignoring gossip from {peer}: incarnation of {who} jumps from {old} to {new}",
                peer=short_id(peer_id), who=short_id(node_id),
                old=record.incarnation, new=incarnation,
            )
            return
        old_state = record.state
        if not record.advertised or incarnation > record.incarnation:
            record.advertised = True
            record.incarnation = incarnation
            record.state = state
            record.heartbeat = row["hb"]
            record.name = row["name"]
            record.address = row["addr"]
            record.sig = row.get("sig")
            if state == ALIVE:
                record.last_heard = now
                record.link_lost_at = None
        elif incarnation == record.incarnation:
            changed = False
            if rank > STATE_RANK[record.state]:
                record.state = state
                record.sig = row.get("sig")
                changed = True
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
                link.dirty.add(node_id)
            return
        record.changed()
        self._mark(node_id)
        if record.state != old_state:
            self._state_changed(record, old_state, now)

    def _learn(self, row: dict, now: float) -> None:
        if not self._room_for_one_more():
            return
        record = _Record(
            row["id"], row["name"], row["addr"], row["inc"], row["state"], row["hb"], now
        )
        record.sig = row.get("sig")
        self._records[record.node_id] = record
        self._mark(record.node_id)
        if record.state != ALIVE:
            self._next_check_at = min(self._next_check_at, now + self.config.failure_timeout_s)
        self._output.member_changed(record.member(), None)

    def _rx_about_self(self, peer_id: str, row: dict) -> None:
        """
        Refute a rumour that this node is suspect, dead or left, or that it
        has a newer incarnation than it has: raise the incarnation past it.
        """
        if self.hidden:
            return
        incarnation = row["inc"]
        if incarnation < self.incarnation:
            return
        if incarnation == self.incarnation and row["state"] == ALIVE:
            return
        if incarnation > self.incarnation + MAX_INCARNATION_JUMP:
            self.log.warn(
                "ignoring gossip from {peer}: claims our incarnation is {new}",
                peer=short_id(peer_id), new=incarnation,
            )
            return
        self.log.info(
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
            del self._records[node_id]
            for link in self._links.values():
                link.knows.pop(node_id, None)
                link.dirty.discard(node_id)
        self._next_check_at = next_at

    def _suspect(self, record: _Record, now: float, why: str) -> None:
        self.log.info(
            "suspecting {name} ({who}): {why}",
            name=record.name, who=short_id(record.node_id), why=why,
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
            if now < attempt.at + config.connect_retry_s
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
            for record in self._rng.sample(candidates, min(wanted, len(candidates))):
                attempt = self._attempts.get(record.address)
                if attempt is None:
                    attempt = self._attempts[record.address] = _Attempt(now)
                else:
                    attempt.at = now
                    attempt.failures += 1
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

    def _forget_attempt(self, address: Optional[str]) -> None:
        if address is not None:
            self._attempts.pop(address, None)

    # Sending

    def _mark(self, node_id: str) -> None:
        for link in self._links.values():
            link.dirty.add(node_id)

    def _mark_self(self) -> None:
        self._mark(self.node_id)

    def _flush(self, peer_id: str, link: _Link) -> None:
        """
        Send C{peer_id} the rows in C{link.dirty} that it does not know,
        in frames that fit in one line.
        """
        rows: List[dict] = []
        size = 0
        records = self._records
        knows = link.knows
        for node_id in link.dirty:
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
            if not _newer(key, knows.get(node_id)):
                continue
            knows[node_id] = key
            if rows and size + row_size > FRAME_BUDGET_BYTES:
                self._output.send(peer_id, {"type": "gossip", "rows": rows})
                rows, size = [], 0
            rows.append(row)
            size += row_size
        link.dirty.clear()
        if rows:
            self._output.send(peer_id, {"type": "gossip", "rows": rows})

    def _gossipable(self, record: _Record) -> bool:
        """
        Rows of members known only by a link are not gossiped, nor
        unsigned leave notices (others could not check them), nor
        tombstones older than half their life (so pruned tombstones do not
        come back).
        """
        if not record.advertised:
            return False
        if record.state == LEFT and record.sig is None:
            return False
        if record.state in (DEAD, LEFT):
            return self.clock.seconds() - record.state_since < self.config.tombstone_s / 2
        return True

    def _announce_left(self) -> None:
        self._raise_incarnation(self.incarnation + 1)
        if self._signer is not None:
            statement = leave_statement(self.node_id, self.incarnation)
            self._own_sig = self._signer(statement).hex()
        else:
            self._own_sig = None
        row = self.own_row()
        row["state"] = LEFT
        if self._own_sig is not None:
            row["sig"] = self._own_sig
        for peer_id in sorted(self._links):
            self._links[peer_id].knows[self.node_id] = (row["inc"], STATE_RANK[LEFT], row["hb"])
            self._output.send(peer_id, {"type": "gossip", "rows": [row]})

    def _raise_incarnation(self, incarnation: int) -> None:
        if incarnation > MAX_INCARNATION:
            self.log.error("incarnation would pass 2**53; cannot refute")
            return
        self.incarnation = incarnation

    def _room_for_one_more(self) -> bool:
        if len(self._records) < self.config.max_members:
            return True
        if not self._full_warned:
            self._full_warned = True
            self.log.warn(
                "membership table full ({count} members); ignoring new members",
                count=len(self._records),
            )
        return False


