# -*- test-case-name: tests.unit.test_membership_parts,tests.unit.test_membership -*-
"""
Dissemination: which rows go on which link, and when.

Rows change only when a member's incarnation, state, name or address
does (no heartbeats flood the network), and each change is sent by each
node at most C{retransmit_mult * ceil(log2(N + 1))} times (memberlist's
bound): on each link once as it changes and once more at the next tick
(a lost frame does not leave a neighbour behind until anti-entropy).  Every link has a dirty
set (rows that changed since they were last sent there), a repair set
(rows pushed again to repair) and a C{knows} map (the newest
C{(incarnation, rank, heartbeat)} exchanged with the peer in either
direction): a row goes to a link only if it tells the peer something new
(per-link reconciliation).  A new link gets the whole table at once
(push-pull: both ends push), and every C{sync_interval_s} one random link
gets the next L{SYNC_ROWS} rows of the table again, in turn
(anti-entropy at a bounded cost, repairs lost frames).  Repairs go to a
link within the receiver's new-member budget (L{NEW_MEMBERS_BURST} at
once, then L{NEW_MEMBERS_PER_S}): a table larger than the burst is not
pushed into a receiver that would drop the rest (and, thinking them
known, never send them again).  Gossip goes to a
link only while its transport takes more (L{IMembershipOutput.ready}),
at most L{FLUSH_ROWS_PER_TICK} rows per link per flush, changes before
repairs, this node's own and proven members' first.
"""

from random import Random
from typing import Dict, List, Optional, Set, Tuple

from twisted.internet.interfaces import IReactorTime

from p2pchat.mesh import wire
from p2pchat.mesh.membership.admission import NEW_MEMBERS_BURST, NEW_MEMBERS_PER_S, Admission
from p2pchat.mesh.membership.own import OwnRow
from p2pchat.mesh.membership.rows import (
    DEAD,
    LEFT,
    SIGNATURE_HEX_LENGTH,
    STATE_RANK,
    join_keys,
    newer_key,
)
from p2pchat.mesh.membership.table import ROW_OVERHEAD_BYTES, MemberTable, Record
from p2pchat.mesh.membership.types import SYNC_ROWS, IMembershipOutput, MembershipConfig
from p2pchat.ratelimit import TokenBucket

#: Budget for the rows of one sent gossip frame, leaving room for the
#: envelope (the whole line must stay under L{wire.MAX_LINE_BYTES}).
FRAME_BUDGET_BYTES = wire.MAX_LINE_BYTES - 1024
#: Rows looked at per link per tick, at most: one tick's work stays
#: bounded whatever the table size and the number of changed rows (the
#: rest stay dirty for the next tick).
FLUSH_ROWS_PER_TICK = 500
#: An upper bound on the encoded size of this node's own row.
OWN_ROW_BYTES = ROW_OVERHEAD_BYTES + 300 + SIGNATURE_HEX_LENGTH * 2


class Link:
    """
    Gossip bookkeeping for the link(s) to one peer.

    @ivar count: open links to the peer.
    @ivar dirty: ids of rows that changed since they were last sent here.
    @ivar repair: ids of rows pushed again (link-up, anti-entropy).
    @ivar pace: the budget of repair rows sent on the link (the peer's
        new-member budget).
    @ivar again: ids of changed rows sent once, to send again at the next
        tick.
    @ivar knows: per member id, the newest C{(incarnation, rank,
        heartbeat)} exchanged with this peer in either direction.
    @ivar since: when the first of these links came up.
    @ivar outbound: whether this node opened the first of them.
    """

    __slots__ = ("count", "dirty", "repair", "again", "knows", "since", "outbound", "pace")

    def __init__(self, now: float, outbound: bool):
        self.count = 0
        # Insertion-ordered (a dict used as a set): rows go out, and are
        # learned, in the same order whatever the process's hash seed, so a
        # simulation with a given seed is one run, not one per hash seed.
        self.dirty: Dict[str, None] = {}
        self.repair: Dict[str, None] = {}
        self.again: Dict[str, None] = {}
        self.pace: Optional[TokenBucket] = None
        self.knows: Dict[str, Tuple[int, int, int]] = {}
        self.since = now
        self.outbound = outbound


class Dissemination:
    """
    The gossip state of every linked peer, and the frames sent to them.

    @ivar links: the gossip state by peer id.
    """

    def __init__(
        self,
        own: OwnRow,
        table: MemberTable,
        admission: Admission,
        clock: IReactorTime,
        output: IMembershipOutput,
        config: MembershipConfig,
    ):
        self._own = own
        self._table = table
        self._admission = admission
        self._clock = clock
        self._output = output
        self._config = config
        self.links: Dict[str, Link] = {}
        #: Times each changed row was sent, by member id (this node's own
        #: included); a row leaves it when it changes again.
        self._sends: Dict[str, int] = {}
        self._sync_cursor = 0
        self._next_sync_at = clock.seconds() + config.sync_interval_s

    def __contains__(self, peer_id: str) -> bool:
        return peer_id in self.links

    def __len__(self) -> int:
        return len(self.links)

    def get(self, peer_id: str) -> Optional[Link]:
        return self.links.get(peer_id)

    def link_up(self, peer_id: str, now: float, outbound: bool) -> None:
        """
        One more link to C{peer_id}: the first gets the whole table at
        once (if its transport takes it now; else at a later tick).
        """
        link = self.links.get(peer_id)
        if link is None:
            link = self.links[peer_id] = Link(now, outbound)
            link.pace = TokenBucket(NEW_MEMBERS_PER_S, NEW_MEMBERS_BURST, self._clock)
            self._dirty_all(link)
            if self._output.ready(peer_id):
                self._flush(peer_id, link)
        link.count += 1

    def release(self, peer_id: str) -> Optional[Link]:
        """
        One link to C{peer_id} closed.

        @return: its gossip state if that was the last link (it is
            dropped), else C{None}.
        """
        link = self.links[peer_id]
        link.count -= 1
        if link.count > 0:
            return None
        del self.links[peer_id]
        return link

    def connections(self, excluding: Set[str]) -> int:
        """
        @return: open links to peers not in C{excluding} (a peer linked
            twice counts twice).
        """
        return sum(link.count for peer_id, link in self.links.items() if peer_id not in excluding)

    def mark(self, node_id: str) -> None:
        """
        C{node_id}'s row changed: every link may need it (a new change,
        so a new count of sends).
        """
        self._sends.pop(node_id, None)
        for link in self.links.values():
            link.dirty[node_id] = None

    def mark_self(self) -> None:
        self.mark(self._own.node_id)

    def learned(self, peer_id: str, node_id: str, key: Tuple[int, int, int]) -> None:
        """
        C{peer_id} told us C{node_id}'s row at C{key} (joined into what
        the link knows).
        """
        link = self.links.get(peer_id)
        if link is not None:
            joined = join_keys(key, link.knows.get(node_id))
            record = self._table.records.get(node_id)
            if record is not None and record.key == joined:
                joined = record.key  # one tuple for the record and its links
            link.knows[node_id] = joined

    def forget(self, node_id: str) -> None:
        """
        C{node_id} left the table: keep no per-link state about it.
        """
        self._sends.pop(node_id, None)
        for link in self.links.values():
            link.knows.pop(node_id, None)
            link.dirty.pop(node_id, None)
            link.repair.pop(node_id, None)
            link.again.pop(node_id, None)

    def tell(self, peer_id: str, row: dict) -> None:
        """
        Send C{row} alone to C{peer_id} (a rumour about it, so it refutes).
        """
        self._output.send(peer_id, wire.gossip([row]))

    def sync(self, now: float, rng: Random) -> None:
        """
        Every C{sync_interval_s}, push the next L{SYNC_ROWS} rows of the
        table (in turn, this node's own last) again to one random link
        (anti-entropy).
        """
        if now >= self._next_sync_at and self.links:
            self._next_sync_at = now + self._config.sync_interval_s
            peer_id = rng.choice(sorted(self.links))
            link = self.links[peer_id]
            ids = [*self._table.records, self._own.node_id]
            start = self._sync_cursor % len(ids)
            count = min(SYNC_ROWS, len(ids))
            chosen = [ids[(start + i) % len(ids)] for i in range(count)]
            self._sync_cursor = (start + count) % len(ids)
            for node_id in chosen:
                link.knows.pop(node_id, None)
                link.repair[node_id] = None

    def flush(self, tick: bool = False) -> None:
        """
        Send each link the rows it has not seen (at a C{tick}, also the
        second copy of the changes sent since the last tick).  Gossip
        waits while a link's transport is full (the peer does not read):
        its rows stay dirty, bounded by the table.
        """
        for peer_id, link in list(self.links.items()):
            if (link.dirty or link.repair or (tick and link.again)) and self._output.ready(
                peer_id
            ):
                self._flush(peer_id, link, tick)

    def announce_left(self, row: dict) -> None:
        """
        Send this node's C{left} row on every link now.
        """
        for peer_id in sorted(self.links):
            self.links[peer_id].knows[self._own.node_id] = (row["inc"], STATE_RANK[LEFT], row["hb"])
            self._output.send(peer_id, wire.gossip([row]))

    def _dirty_all(self, link: Link) -> None:
        link.repair.update(dict.fromkeys(self._table.records))
        link.repair[self._own.node_id] = None

    def retransmit_limit(self) -> int:
        """
        @return: how many times this node sends one change of a row:
            C{retransmit_mult * ceil(log2(N + 1))}, N the members known.
        """
        members = len(self._table) + 1
        return self._config.retransmit_mult * max(1, (members).bit_length())

    def _flush(self, peer_id: str, link: Link, tick: bool = False) -> None:
        """
        Send C{peer_id} the second copies due (at a C{tick}), the rows in
        C{link.dirty} (within their retransmit limit), then in
        C{link.repair}, that it does not know, in frames
        that fit in one line: at most L{FLUSH_ROWS_PER_TICK} of them, this
        node's own and proven members' first (a receiver spends its
        new-member budget on what comes first).
        """
        take = self._admission.take_dirty
        again = take(link.again, FLUSH_ROWS_PER_TICK) if tick else []
        batch = [(node_id, None) for node_id in again]
        batch.extend(
            (node_id, True) for node_id in take(link.dirty, FLUSH_ROWS_PER_TICK - len(batch))
        )
        pace = link.pace
        if len(batch) < FLUSH_ROWS_PER_TICK and link.repair and (pace is None or pace.tokens >= 1):
            batch.extend(
                (node_id, False) for node_id in take(link.repair, FLUSH_ROWS_PER_TICK - len(batch))
            )
        rows: List[dict] = []
        size = 0
        records = self._table.records
        knows = link.knows
        own = self._own
        sends = self._sends
        limit = self.retransmit_limit()
        for index, (node_id, change) in enumerate(batch):
            if node_id == own.node_id:
                if own.hidden or own.left:
                    continue
                row = own.row()
                row_size = OWN_ROW_BYTES
                key = (row["inc"], STATE_RANK[row["state"]], row["hb"])
            else:
                record = records.get(node_id)
                if record is None or not self._gossipable(record):
                    continue
                row = record.row()
                row_size = record.size()
                key = record.key
            if change is None:
                # The second copy: only if unchanged and the peer told us
                # nothing newer meanwhile.
                if knows.get(node_id) != key:
                    continue
            elif not newer_key(key, knows.get(node_id)):
                continue
            if change is False and pace is not None and not pace.take():
                # Over the peer's new-member budget: the rest wait.
                link.repair.update(dict.fromkeys(n for n, _ in batch[index:]))
                break
            if change is not False:
                sent = sends.get(node_id, 0)
                if sent >= limit:
                    continue
                sends[node_id] = sent + 1
                if change:
                    link.again[node_id] = None
            knows[node_id] = key
            if rows and size + row_size > FRAME_BUDGET_BYTES:
                self._output.send(peer_id, wire.gossip(rows))
                rows, size = [], 0
            rows.append(row)
            size += row_size
        if rows:
            self._output.send(peer_id, wire.gossip(rows))

    def _gossipable(self, record: Record) -> bool:
        """
        Rows of members known only by a link are not gossiped, nor
        tombstones older than half their life (so pruned tombstones do not
        come back).
        """
        if not record.advertised:
            return False
        if record.state in (DEAD, LEFT):
            return self._clock.seconds() - record.state_since < self._config.tombstone_s / 2
        return True

