"""
Tests for C{/converged}: members' signed digest records
(L{p2pchat.mesh.convergence}: signing, flooding, budgets, forgeries) on a
L{Clock} with recording links, the report (L{p2pchat.chat.convergence}),
and two nodes that agree.
"""

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.chat.convergence import Convergence, convergence, describe
from p2pchat.faces.console import ConsoleProtocol
from p2pchat.log.identity import Identity
from p2pchat.mesh import convergence as digests_module
from p2pchat.mesh import wire
from p2pchat.mesh.convergence import (
    MAX_RECORDS_PER_FRAME,
    MIN_ACCEPT_GAP_S,
    MIN_RESIGN_S,
    QUIET_S,
    DigestRecord,
    Digests,
    parse_record,
    resign_interval,
    statement,
)
from p2pchat.mesh.wire import FrameError, encode_frame, parse_frame
from tests.nodes import Network
from tests.strategies import IDENTITIES

ME, CAROL, DAVE = IDENTITIES
DIGEST = "d" * 64
WALL_S = 1_700_000_000.0


class RecordingLink:
    def __init__(self, name, version=4):
        self.name = name
        self.version = version
        self.sent = []

    def send_frame(self, frame):
        self.sent.append(frame)

    def describe(self):
        return self.name

    def records(self):
        return [r for frame in self.sent for r in frame["records"]]


def signed(identity, count, digest=DIGEST, at_ms=int(WALL_S * 1000)):
    sig = identity.sign(statement(identity.node_id, count, digest, at_ms)).hex()
    return DigestRecord(identity.node_id, count, digest, at_ms, sig).to_wire()


class DigestsTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.own = (10, DIGEST)
        self.members = {CAROL.node_id, DAVE.node_id}
        self.digests = Digests(
            self.clock, lambda: WALL_S + self.clock.seconds(), ME.node_id, ME.sign,
            lambda: self.own, self.members.__contains__, lambda: 3,
        )
        self.link = RecordingLink("L1")
        self.digests.link_up(self.link)

    def test_signs_once_quiet(self):
        """
        This node signs its record once its log has been quiet for
        L{QUIET_S}, sends it on its links, and not again while the log does
        not change.
        """
        self.digests.tick()
        self.clock.advance(QUIET_S - 0.2)
        self.digests.tick()
        self.assertEqual(self.link.sent, [])
        self.clock.advance(0.2)
        self.digests.tick()
        [record] = self.link.records()
        self.assertEqual((record["id"], record["n"], record["digest"]), (ME.node_id, 10, DIGEST))
        self.assertIsNotNone(parse_record(record))
        for _ in range(100):
            self.clock.advance(1)
            self.digests.tick()
        self.assertEqual(len(self.link.sent), 1)

    def test_resign_at_most_once_per_interval(self):
        """
        A log that keeps changing is re-signed at most once per
        L{resign_interval}, which grows with the number of members.
        """
        self.assertEqual(resign_interval(2), MIN_RESIGN_S)
        self.assertEqual(resign_interval(10_000), 20_000.0)
        signed_at = []
        for step in range(200):
            self.own = (10 + step // 20, DIGEST[:-2] + f"{step // 20:02d}")
            self.clock.advance(0.2 if step % 20 else 3)
            self.digests.tick()
            if len(self.link.sent) > len(signed_at):
                signed_at.append(self.clock.seconds())
        gaps = [b - a for a, b in zip(signed_at, signed_at[1:])]
        self.assertTrue(len(signed_at) > 3)
        self.assertTrue(all(gap >= resign_interval(3) for gap in gaps), gaps)

    def test_busy_log_still_signed(self):
        """
        A log that is never quiet (a busy network) is still signed, once
        per interval, so /converged does not go stale for ever.
        """
        signed_at = []
        for step in range(300):
            self.own = (10 + step, f"{step:064x}")
            self.clock.advance(0.2)
            self.digests.tick()
            if len(self.link.sent) > len(signed_at):
                signed_at.append(self.clock.seconds())
        gaps = [b - a for a, b in zip(signed_at, signed_at[1:])]
        self.assertEqual(len(signed_at), 9)
        self.assertTrue(all(resign_interval(3) <= gap <= resign_interval(3) + 0.4
                            for gap in gaps), gaps)

    def test_not_sent_to_older_protocols(self):
        """
        A link that speaks protocol 3 or less never gets a digests frame
        (an older node closes a link on an unknown frame type).
        """
        old = RecordingLink("old", version=3)
        self.digests.link_up(old)
        self.digests.tick()
        self.clock.advance(QUIET_S)
        self.digests.tick()
        self.assertEqual(len(self.link.sent), 1)
        self.assertEqual(old.sent, [])
        self.digests.rx_frame(old, wire.digests([signed(CAROL, 5)]))
        self.assertNotIn(CAROL.node_id, self.digests.records)

    def test_member_record_kept_and_forwarded(self):
        """
        A member's own record is kept and forwarded on the other links,
        not back to where it came from; one no newer is dropped.
        """
        other = RecordingLink("L2")
        self.digests.link_up(other)
        record = signed(CAROL, 5)
        self.digests.rx_frame(self.link, wire.digests([record]))
        self.digests.tick()
        self.assertEqual(self.digests.records[CAROL.node_id].count, 5)
        self.assertEqual(other.records(), [record])
        self.assertEqual(self.link.sent, [])
        self.digests.rx_frame(other, wire.digests([record]))
        self.digests.tick()
        self.assertEqual(self.link.sent, [])

    def test_forged_and_unsigned_records_ignored(self):
        """
        A record whose signature is not its member's (forged by a relay,
        altered, signed by another member or unsigned), of a non-member,
        of this node, or dated far ahead is ignored: nobody's claim
        outranks a member's own word.
        """
        good = signed(CAROL, 5)
        self.digests.rx_frame(self.link, wire.digests([good]))
        self.clock.advance(MIN_ACCEPT_GAP_S)
        newer_at = good["at"] + 1
        altered = dict(signed(CAROL, 5, at_ms=newer_at), n=999)
        by_other = dict(signed(DAVE, 999, at_ms=newer_at), id=CAROL.node_id)
        unsigned = {k: v for k, v in signed(CAROL, 999, at_ms=newer_at).items() if k != "sig"}
        outsider = Identity.generate()
        future = signed(CAROL, 999, at_ms=int((WALL_S + 3600) * 1000))
        mine = signed(ME, 999, at_ms=newer_at)
        for bad in (altered, by_other, unsigned, signed(outsider, 1), future, mine,
                    dict(signed(CAROL, 6, at_ms=newer_at), extra=1), "junk"):
            self.assertFalse(self.digests.learn(bad, self.link), bad)
        self.assertEqual(self.digests.records[CAROL.node_id].count, 5)
        self.assertEqual(set(self.digests.records), {CAROL.node_id})
        self.assertTrue(self.digests.learn(signed(CAROL, 6, at_ms=newer_at), self.link))

    def test_one_record_per_member_per_gap(self):
        """
        A member signing records as fast as it can gets one taken (and
        forwarded) per L{MIN_ACCEPT_GAP_S}, not one per record.
        """
        at_ms = int(WALL_S * 1000)
        taken = [self.digests.learn(signed(CAROL, n, at_ms=at_ms + n)) for n in range(10)]
        self.assertEqual(taken, [True] + [False] * 9)
        self.clock.advance(MIN_ACCEPT_GAP_S)
        self.assertTrue(self.digests.learn(signed(CAROL, 20, at_ms=at_ms + 20)))

    def test_budget(self):
        """
        Records beyond a link's budget are dropped unchecked.
        """
        self.patch(digests_module, "RECORDS_PER_S", (1.0, 2))
        digests = Digests(self.clock, lambda: WALL_S, ME.node_id, ME.sign,
                          lambda: self.own, self.members.__contains__, lambda: 3)
        digests.link_up(self.link)
        erin = Identity.generate()
        self.members.add(erin.node_id)
        digests.rx_frame(self.link, wire.digests([signed(CAROL, 1), signed(DAVE, 1)]))
        digests.rx_frame(self.link, wire.digests([signed(erin, 1)]))
        self.assertEqual(set(digests.records), {CAROL.node_id, DAVE.node_id})
        self.clock.advance(1)
        digests.rx_frame(self.link, wire.digests([signed(erin, 1)]))
        self.assertIn(erin.node_id, digests.records)

    def test_new_link_gets_what_is_held_paced(self):
        """
        A new link gets every record held, at most
        L{MAX_RECORDS_PER_FRAME} a tick.
        """
        many = [Identity.generate() for _ in range(MAX_RECORDS_PER_FRAME + 1)]
        self.members.update(i.node_id for i in many)
        for identity in many:
            self.assertTrue(self.digests.learn(signed(identity, 1)))
        late = RecordingLink("late")
        self.digests.link_up(late)
        self.digests.tick()
        self.assertEqual(len(late.records()), MAX_RECORDS_PER_FRAME)
        self.digests.tick()
        self.assertEqual(len(late.records()), MAX_RECORDS_PER_FRAME + 1)

    def test_records_of_gone_members_pruned(self):
        """
        Records of ids that left the membership table go (memory is
        bounded by the table's).
        """
        self.digests.learn(signed(CAROL, 1))
        self.members.discard(CAROL.node_id)
        self.clock.advance(digests_module.PRUNE_EVERY_S)
        self.digests.tick()
        self.assertNotIn(CAROL.node_id, self.digests.records)

    def test_frame(self):
        """
        The C{digests} frame carries 1 to L{wire.MAX_DIGESTS_PER_FRAME}
        records.
        """
        frame = wire.digests([signed(CAROL, 1)])
        self.assertEqual(parse_frame(encode_frame(frame)), frame)
        for records in ([], [signed(CAROL, 1)] * (wire.MAX_DIGESTS_PER_FRAME + 1), {}):
            self.assertRaises(FrameError, parse_frame,
                              encode_frame({"type": "digests", "records": records}))


class ReportTests(SynchronousTestCase):
    def record(self, count, digest=DIGEST, age_s=0):
        return DigestRecord("x", count, digest, int((WALL_S - age_s) * 1000), "")

    def test_report(self):
        """
        Members holding this node's digest, behind, ahead, differing and
        silent are counted; the oldest record's age is given.
        """
        records = {
            "a": self.record(48_213), "b": self.record(48_213, age_s=40),
            "c": self.record(48_208), "d": self.record(47_873), "e": self.record(48_300),
            "f": self.record(48_213, "e" * 64),
        }
        result = convergence((48_213, "3fa9c1d2" + "0" * 56), [], {}, WALL_S)
        self.assertEqual(describe(result), "converged: 1 of 1 members hold exactly this "
                         "node's 48,213 messages (digest 3fa9c1d2)")
        result = convergence((48_213, DIGEST), list("abcdefgh"), records, WALL_S,
                             older=lambda node_id: node_id == "h")
        self.assertEqual(
            result, Convergence(9, 48_213, DIGEST, 3, (5, 340), (87,), 1, 2, 40.0, older=1))
        self.assertEqual(
            describe(result),
            "converged: 3 of 9 members hold exactly this node's 48,213 messages (digest "
            "dddddddd); 2 behind by 5-340 messages; 1 ahead by 87 messages; 1 with as many "
            "messages but others; 2 not reporting (1 on protocol 3 or older, 1 with no record "
            "yet); oldest record 40 s old",
        )
        for older, why in ((lambda node_id: True, "protocol 3 or older"),
                           (lambda node_id: False, "no record yet, or protocol 3 or older")):
            self.assertIn(f"; 1 not reporting ({why})", describe(
                convergence((1, DIGEST), ["x"], {}, WALL_S, older)))


class TwoNodesTests(SynchronousTestCase):
    def test_two_of_two(self):
        """
        Two linked nodes that hold the same log each report 2 of 2, after
        the quiet time and one signing interval; a new message makes the
        other one behind until it arrives and is signed again.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        for number in range(30):
            alice.chat.post(f"m{number}")
        net.settle()
        net.link(alice, bob)
        net.tick(0.2, times=int((QUIET_S + MIN_RESIGN_S) / 0.2) + 2)
        for node in (alice, bob):
            result = node.chat.converged()
            self.assertEqual((result.members, result.same), (2, 2), describe(result))
        transport = StringTransport()
        console = ConsoleProtocol(bob.chat)
        console.makeConnection(transport)
        transport.clear()
        console.dataReceived(b"/converged\r\n")
        self.assertEqual(
            transport.value().decode(),
            f"converged: 2 of 2 members hold exactly this node's 30 messages (digest "
            f"{bob.store.digest()[:8]}); oldest record 0 s old\r\n",
        )
        # Had alice spoken protocol 3, bob would have no record of hers,
        # and would say why.
        bob.links.link_to(alice.node_id).version = 3
        del bob.digests.records[alice.node_id]
        result = bob.chat.converged()
        self.assertEqual((result.same, result.silent, result.older), (1, 1, 1))


def digest_traffic(test_case, nodes, busy_s=30.0, quiet_s=20.0, idle_s=30.0):
    """
    Nodes linked in a ring on one L{Clock}; every node posts a message a
    second for C{busy_s}, then nothing.  Counts the digest records each
    node sends (and their bytes on the wire) while busy, while settling
    (C{quiet_s}) and once idle (C{idle_s}), per node per second.

    @return: C{(busy, settling, idle)}, each C{(records, bytes)} per node
        per second, and the least C{same} of the nodes' C{/converged}.
    """
    sent = []
    build = wire.digests

    def counting(records):
        frame = build(records)
        sent.append((len(records), len(encode_frame(frame)) + 1))
        return frame

    test_case.patch(digests_module.wire, "digests", counting)
    net = Network(test_case)
    ring = [net.node(f"n{number}") for number in range(nodes)]
    for number, node in enumerate(ring):
        net.link(node, ring[(number + 1) % nodes])
    net.tick(0.2, times=50)
    phases = []
    for seconds, posting in ((busy_s, True), (quiet_s, False), (idle_s, False)):
        del sent[:]
        for step in range(int(seconds / 0.2)):
            if posting and step % 5 == 0:
                for node in ring:
                    node.chat.post(f"m{step}")
            net.tick(0.2)
        phases.append((sum(r for r, _ in sent) / nodes / seconds,
                       sum(b for _, b in sent) / nodes / seconds))
    return phases, min(node.chat.converged().same for node in ring)


class TrafficTests(SynchronousTestCase):
    def test_bounded_and_silent_when_quiet(self):
        """
        While every member posts, a node sends at most one record per
        record the network makes (N / resign_interval(N) a second) per
        other link (one, in a ring), plus its own; once nobody posts,
        nothing; and then every node reports all members converged.
        """
        nodes = 4
        (busy, settling, idle), same = digest_traffic(self, nodes)
        self.assertLessEqual(busy[0], nodes / resign_interval(nodes) + 0.1)
        self.assertEqual(idle, (0.0, 0.0))
        self.assertEqual(same, nodes)


if __name__ == "__main__":
    # python -m tests.unit.test_convergence N...: the traffic table of
    # docs/performance.md.
    import os
    import sys
    import tempfile

    # Each node's store goes under a temporary directory, not the checkout.
    os.chdir(tempfile.mkdtemp(prefix="p2pchat-digest-traffic-"))

    class _Case(SynchronousTestCase):
        def runTest(self):
            pass

    for count in map(int, sys.argv[1:]):
        case = _Case()
        (busy, settling, idle), same = digest_traffic(case, count, 60.0, 30.0, 60.0)
        case.doCleanups()
        print(f"{count} nodes: busy {busy[0]:.2f} records/node/s {busy[1]:.0f} B/node/s; "
              f"settling {settling[1]:.0f} B/node/s; idle {idle[1]:.0f} B/node/s; "
              f"/converged {same} of {count}", flush=True)
