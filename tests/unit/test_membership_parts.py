"""
Tests for the parts behind L{p2pchat.mesh.membership.Membership}, each
driven alone on a L{Clock} with a recording output, asserting the exact
calls: L{Dissemination} (which rows go on which link),
L{FailureDetector} (suspicion, death, pruning) and L{ActiveView} (dial
and drop).  Whole-object behaviour is in C{test_membership}.
"""

import math
from random import Random

from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh import wire
from p2pchat.mesh.membership import ALIVE, DEAD, LEFT, SUSPECT, MembershipConfig
from p2pchat.mesh.membership.admission import NEW_MEMBERS_BURST, NEW_MEMBERS_PER_S, Admission
from p2pchat.mesh.membership.detector import (
    CONFIRMATIONS,
    SUSPICION_MIN_FRACTION,
    FailureDetector,
)
from p2pchat.mesh.membership.dissemination import FLUSH_ROWS_PER_TICK, Dissemination
from p2pchat.mesh.membership.own import OwnRow
from p2pchat.mesh.membership.rows import STATE_RANK
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import SYNC_ROWS
from p2pchat.mesh.membership.view import MAX_RETRY_DOUBLINGS, ActiveView
from p2pchat.safe import LogLimiter
from tests.unit.test_membership import BOB, CAROL, DAVE, ME, RecordingOutput, row
from tests.unit.test_membership_attacks import strangers


class Parts:
    """
    The parts of one membership for ME, wired as L{Membership} wires
    them, on a L{Clock} with a L{RecordingOutput}.
    """

    def __init__(self, config=MembershipConfig()):  # noqa: B008 (frozen)
        self.config = config
        self.clock = Clock()
        self.output = RecordingOutput()
        log = Logger()
        limiter = LogLimiter(self.clock)
        self.own = OwnRow(ME.node_id, "me", "10.0.0.1:9000", 0, False, ME.sign, log)
        self.admission = Admission(self.clock, config.heartbeat_interval_s)
        self.forgotten = []
        self.table = MemberTable(config, self.admission, limiter, log, self._forget)
        self.links = Dissemination(
            self.own, self.table, self.admission, self.clock, self.output, config
        )
        self.detector = FailureDetector(
            self.table, self.links, self.output, config, limiter, log, 0.0
        )
        self.view = ActiveView(
            self.own, self.table, self.links, self.admission, self.output, config, Random(0)
        )

    def _forget(self, node_id):
        self.forgotten.append(node_id)
        self.links.forget(node_id)

    def add(self, who, state=ALIVE, address="10.0.0.9:9000", unproven=False):
        """
        @return: a new signed record for C{who} (an L{Identity}), in the
            table.
        """
        signed = row(who, 1, state, addr=address)
        record = Record(
            who.node_id, signed["name"], address, 1, state, 0, self.clock.seconds()
        )
        record.sig = signed["sig"]
        self.table.add(record)
        if unproven:
            self.admission.unproven(who.node_id)
        return record


class DisseminationTests(SynchronousTestCase):
    """
    L{Dissemination}: per-link dirty sets and reconciliation.
    """

    def test_first_link_gets_whole_table_in_one_frame(self):
        """
        The first link to a peer gets the table, in the table's order,
        and this node's row, in one frame; a second link to it gets
        nothing more.
        """
        p = Parts()
        carol, dave = p.add(CAROL), p.add(DAVE)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.links.link_up(BOB.node_id, 0.0, outbound=False)
        self.assertEqual(
            p.output.calls,
            [("send", BOB.node_id, wire.gossip([carol.row(), dave.row(), p.own.row()]))],
        )

    def test_release_drops_state_with_last_link(self):
        """
        Closing one of two links keeps the peer's state; closing the last
        returns it and forgets the peer.
        """
        p = Parts()
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.links.link_up(BOB.node_id, 1.0, outbound=False)
        self.assertIsNone(p.links.release(BOB.node_id))
        link = p.links.release(BOB.node_id)
        self.assertEqual((link.outbound, link.since, link.count), (True, 0.0, 0))
        self.assertNotIn(BOB.node_id, p.links)

    def test_full_link_waits(self):
        """
        A link whose transport is full gets nothing until it drains; then
        one flush sends what is dirty.
        """
        p = Parts()
        carol = p.add(CAROL)
        p.output.stalled.add(BOB.node_id)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.links.flush()
        self.assertEqual(p.output.calls, [])
        p.output.stalled.clear()
        p.links.flush()
        self.assertEqual(
            p.output.calls, [("send", BOB.node_id, wire.gossip([carol.row(), p.own.row()]))]
        )

    def test_only_what_the_peer_does_not_know(self):
        """
        A row the peer told us (at the same key or newer) is not sent back;
        a changed row is, once.
        """
        p = Parts()
        carol, dave = p.add(CAROL), p.add(DAVE)
        p.output.stalled.add(BOB.node_id)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.links.learned(BOB.node_id, CAROL.node_id, carol.key)
        p.links.learned(BOB.node_id, ME.node_id, (0, STATE_RANK[ALIVE], 0))
        p.output.stalled.clear()
        p.links.flush()
        self.assertEqual(p.output.calls, [("send", BOB.node_id, wire.gossip([dave.row()]))])
        p.output.clear()
        carol.heartbeat += 1
        carol.changed()
        p.links.mark(CAROL.node_id)
        p.links.flush()
        p.links.flush()
        self.assertEqual(p.output.calls, [("send", BOB.node_id, wire.gossip([carol.row()]))])

    def test_at_most_flush_rows_per_tick(self):
        """
        One flush sends at most L{FLUSH_ROWS_PER_TICK} rows, in frames
        that each fit in a line; the rest go on the next.
        """
        p = Parts()
        for who in strangers(FLUSH_ROWS_PER_TICK + 99):
            p.add(who)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        first = p.output.sent(BOB.node_id)
        for _, _, frame in p.output.of("send"):
            self.assertLessEqual(len(wire.encode_frame(frame)), wire.MAX_LINE_BYTES)
        p.output.clear()
        p.links.flush()
        self.assertEqual(
            (len(first), len(p.output.sent(BOB.node_id))), (FLUSH_ROWS_PER_TICK, 100)
        )

    def test_proven_first(self):
        """
        Rows of proven members (and this node's) go before unproven ones.
        """
        p = Parts()
        stranger = p.add(CAROL, unproven=True)
        dave = p.add(DAVE)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        self.assertEqual(
            p.output.sent(BOB.node_id), [dave.row(), p.own.row(), stranger.row()]
        )

    def test_old_tombstones_not_gossiped(self):
        """
        Rows only known by a hello are never gossiped, nor tombstones past
        half their life.
        """
        p = Parts()
        p.add(CAROL, DEAD)
        hello_only = p.add(DAVE)
        hello_only.advertised = False
        p.clock.advance(p.config.tombstone_s / 2)
        p.links.link_up(BOB.node_id, p.clock.seconds(), outbound=True)
        self.assertEqual(p.output.sent(BOB.node_id), [p.own.row()])

    def test_sync_pushes_table_again_to_one_link(self):
        """
        Every C{sync_interval_s}, one link forgets what it knows of the
        next L{SYNC_ROWS} rows (this node's own last) and gets them again.
        """
        p = Parts()
        carol = p.add(CAROL)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.output.clear()
        p.links.sync(p.config.sync_interval_s - 1, Random(0))
        p.links.flush()
        self.assertEqual(p.output.calls, [])
        p.links.sync(p.config.sync_interval_s, Random(0))
        p.links.flush()
        self.assertEqual(
            p.output.calls, [("send", BOB.node_id, wire.gossip([carol.row(), p.own.row()]))]
        )

    def test_table_pushed_within_peer_new_member_budget(self):
        """
        A table larger than the peer's new-member burst goes out at link-up
        up to the burst; the rest follows at the peer's refill rate, so
        the peer drops none (it would never get them again).
        """
        p = Parts()
        records = [p.add(who) for who in strangers(NEW_MEMBERS_BURST + 30)]
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.links.flush()
        first = [r["id"] for call in p.output.calls for r in call[2]["rows"]]
        self.assertEqual(len(first), NEW_MEMBERS_BURST)
        p.output.clear()
        p.clock.advance(1.0)
        p.links.flush()
        later = [r["id"] for call in p.output.calls for r in call[2]["rows"]]
        self.assertEqual(len(later), NEW_MEMBERS_PER_S)
        p.clock.advance(1.0)
        p.links.flush()
        sent = {r["id"] for call in p.output.calls for r in call[2]["rows"]} | set(first)
        self.assertEqual(sent, {r.node_id for r in records} | {ME.node_id})

    def test_sync_rows_in_turn(self):
        """
        With more than L{SYNC_ROWS} members, each sync pushes the next
        L{SYNC_ROWS} rows of the table, wrapping around: anti-entropy
        costs the same whatever the table's size.
        """
        p = Parts()
        records = [p.add(who) for who in strangers(SYNC_ROWS + 10)]
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.output.clear()
        interval = p.config.sync_interval_s
        for turn in (1, 2):
            p.links.sync(interval * turn, Random(0))
            p.links.flush()
        first, second = (call[2]["rows"] for call in p.output.calls)
        self.assertEqual(first, [record.row() for record in records[:SYNC_ROWS]])
        wrapped = [record.row() for record in records[SYNC_ROWS:]] + [p.own.row()]
        self.assertEqual(second, wrapped + [r.row() for r in records[: SYNC_ROWS - len(wrapped)]])

    def test_announce_left(self):
        """
        A leave goes at once to every link, in id order, and counts as
        known there.
        """
        p = Parts()
        p.links.link_up(DAVE.node_id, 0.0, outbound=True)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.output.clear()
        left = p.own.row(leaving=True)
        p.links.announce_left(left)
        self.assertEqual(
            p.output.calls,
            [("send", peer, wire.gossip([left])) for peer in sorted([BOB.node_id, DAVE.node_id])],
        )
        self.assertEqual(left["state"], LEFT)
        p.links.mark_self()
        p.links.flush()
        self.assertEqual(len(p.output.calls), 2)


class FailureDetectorTests(SynchronousTestCase):
    """
    L{FailureDetector}: time-outs with suspicion.
    """

    def test_suspect_then_dead_then_pruned(self):
        """
        Suspected on this node's evidence alone: dead after
        C{failure_timeout_s} (no confirmation shrinks it); C{tombstone_s}
        later, pruned.  Each change is gossiped.
        """
        p = Parts()
        carol = p.add(CAROL)
        p.links.link_up(BOB.node_id, 0.0, outbound=True)
        p.output.clear()
        p.detector.check(0.0)
        p.detector.suspect(carol, 0.0, "test", ME.node_id)
        p.links.flush()
        timeout = p.config.failure_timeout_s
        self.assertEqual(p.detector.next_check_at, timeout)
        for at in (timeout - 0.1, timeout, timeout + p.config.tombstone_s):
            p.clock.advance(at - p.clock.seconds())
            p.detector.check(at)
            p.links.flush()
        self.assertEqual(
            [
                call if call[0] == "member_changed"
                else (call[0], call[1], [(r["id"], r["state"]) for r in call[2]["rows"]])
                for call in p.output.calls
            ],
            [
                ("member_changed", CAROL.node_id, ALIVE, SUSPECT),
                ("send", BOB.node_id, [(CAROL.node_id, SUSPECT)]),
                ("member_changed", CAROL.node_id, SUSPECT, DEAD),
                ("send", BOB.node_id, [(CAROL.node_id, DEAD)]),
            ],
        )
        self.assertEqual((p.table.get(CAROL.node_id), p.forgotten), (None, [CAROL.node_id]))
        self.assertNotIn(CAROL.node_id, p.links.get(BOB.node_id).knows)

    def test_confirmations_shrink_suspicion(self):
        """
        Each independent confirmation brings death nearer, Lifeguard's
        formula: C{max - (max - min) * log(C + 1) / log(K + 1)}, down to
        C{min} (5/8 of C{failure_timeout_s}) after L{CONFIRMATIONS}; more
        change nothing, nor one node confirming twice.
        """
        p = Parts()
        carol = p.add(CAROL)
        p.detector.check(0.0)
        p.detector.suspect(carol, 0.0, "test", ME.node_id)
        most = p.config.failure_timeout_s
        least = most * SUSPICION_MIN_FRACTION
        expected = [most]
        for confirmer in (BOB, BOB, DAVE, CAROL, ME):
            p.detector.confirm(carol, confirmer.node_id)
            expected.append(p.detector.next_check_at)
        self.assertEqual(
            expected,
            [
                most,
                most - (most - least) * math.log(2) / math.log(4),
                most - (most - least) * math.log(2) / math.log(4),
                most - (most - least) * math.log(3) / math.log(4),
                least,
                least,
            ],
        )
        self.assertEqual(CONFIRMATIONS, 3)
        p.detector.check(least - 0.01)
        self.assertEqual(carol.state, SUSPECT)
        p.detector.check(least)
        self.assertEqual(carol.state, DEAD)

    def test_suspect_only_alive_advertised(self):
        """
        Only an alive member known by gossip can be suspected: not one
        already suspect, dead or left, nor one known only by a hello.
        """
        p = Parts()
        dead, hello_only = p.add(CAROL, state=DEAD), p.add(DAVE)
        hello_only.advertised = False
        for record in (dead, hello_only):
            p.detector.suspect(record, 0.0, "test", ME.node_id)
        self.assertEqual((p.output.calls, dead.state, hello_only.state), ([], DEAD, ALIVE))

    def test_next_check_at(self):
        """
        With no suspect, the next check is due when a tombstone could be
        pruned; C{due_by} brings it forward.
        """
        p = Parts()
        p.add(CAROL)
        p.clock.advance(1.0)
        p.detector.check(1.0)
        self.assertEqual(p.detector.next_check_at, 1.0 + p.config.tombstone_s)
        p.detector.due_by(2.0)
        self.assertEqual(p.detector.next_check_at, 2.0)

    def test_left_pruned_is_remembered(self):
        """
        A pruned left member's incarnation is kept in C{gone}.
        """
        p = Parts()
        p.add(CAROL, LEFT)
        p.detector.check(p.config.tombstone_s)
        self.assertEqual(p.table.gone, {CAROL.node_id: 1})


class ActiveViewTests(SynchronousTestCase):
    """
    L{ActiveView}: dial below C{max_links}, drop above it plus slack.
    """

    def test_dials_with_back_off(self):
        """
        Below C{max_links} it dials one alive member per tick; an address
        whose attempts fail waits twice as long each time.
        """
        p = Parts(MembershipConfig(max_links=1, connect_retry_s=5.0))
        p.add(CAROL, address="10.0.0.3:9000")
        p.add(DAVE, address=None)
        dials = []
        for second in range(0, 5 * 2**MAX_RETRY_DOUBLINGS):
            p.view.keep(float(second))
            dials += [second for call in p.output.of("connect")]
            p.output.clear()
        self.assertEqual(dials, [0, 5, 15, 35, 75])

    def test_linked_address_forgets_back_off(self):
        """
        A link to the address ends its back-off: after it closes late, the
        member is dialled again at once.
        """
        p = Parts(MembershipConfig(max_links=1))
        carol = p.add(CAROL, address="10.0.0.3:9000")
        p.view.keep(0.0)
        p.links.link_up(CAROL.node_id, 1.0, outbound=True)
        p.view.linked(carol, "10.0.0.3:9000")
        carol.links = 1
        link = p.links.release(CAROL.node_id)
        carol.links = 0
        self.assertFalse(p.view.unlinked(CAROL.node_id, link, carol, 100.0))
        p.output.clear()
        p.view.keep(100.0)
        self.assertEqual(p.output.calls, [("connect", "10.0.0.3:9000")])

    def test_refused_link_backs_off(self):
        """
        An outbound link closed at once (a full node said no) counts as a
        failed attempt.
        """
        p = Parts(MembershipConfig(max_links=1, connect_retry_s=5.0))
        carol = p.add(CAROL, address="10.0.0.3:9000")
        p.view.keep(0.0)
        p.links.link_up(CAROL.node_id, 0.0, outbound=True)
        p.view.linked(carol, None)
        link = p.links.release(CAROL.node_id)
        p.view.unlinked(CAROL.node_id, link, carol, 1.0)
        p.output.clear()
        p.view.keep(5.9)
        p.view.keep(6.0)
        self.assertEqual(p.output.calls, [("connect", "10.0.0.3:9000")])

    def test_drops_one_settled_link_when_over(self):
        """
        Above C{max_links + link_slack} it drops one settled link (one
        linked twice first), once, and says why, telling the peer first
        (C{unlink}: it is no sign of failure).
        """
        p = Parts(MembershipConfig(max_links=1, link_slack=1))
        p.links.link_up(BOB.node_id, 0.0, outbound=False)
        p.links.link_up(CAROL.node_id, 0.0, outbound=False)
        p.links.link_up(CAROL.node_id, 0.0, outbound=True)
        p.output.clear()
        p.view.keep(0.5)
        self.assertEqual(p.output.calls, [])
        p.view.keep(1.0)
        p.view.keep(1.2)
        self.assertEqual(
            p.output.calls,
            [
                ("send", CAROL.node_id, wire.unlink()),
                ("disconnect", CAROL.node_id, "more than 2 links"),
            ],
        )
        link = p.links.release(CAROL.node_id) or p.links.release(CAROL.node_id)
        self.assertTrue(p.view.unlinked(CAROL.node_id, link, None, 1.4))
