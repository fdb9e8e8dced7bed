"""
A red team against one L{Membership} (a L{Clock} and a recording output):
gossip respects flow control and bounds its work per tick, heartbeat
replays and signature checks are budgeted, a linked peer this node hears
(or is not reading) is never suspected, replaying rows on more links
proves nothing, and a flood of members does not flood the log.
"""

from twisted.internet.task import Clock
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh import links as links_module
from p2pchat.mesh.membership import ALIVE, SUSPECT, Member, MembershipConfig
from p2pchat.mesh.membership.admission import GLOBAL_VERIFIES_BURST, NEW_MEMBERS_BURST
from p2pchat.mesh.membership.dissemination import FLUSH_ROWS_PER_TICK
from tests.nodes import Network
from tests.unit.test_membership import BOB, CAROL, DAVE, ME, Harness, gossip, row
from tests.unit.test_membership_attacks import strangers


def capture_log(case):
    logged = []
    globalLogPublisher.addObserver(logged.append)
    case.addCleanup(globalLogPublisher.removeObserver, logged.append)
    return logged


def lines(logged, text):
    return [e for e in logged if text in e.get("log_format", "")]


def fill(h, count, via=DAVE, start=1000):
    """
    Teach C{h} C{count} fresh members through C{via}'s link.

    @return: their rows.
    """
    rows = [
        row(who, addr=f"10.9.{i // 250}.{i % 250}:9000")
        for i, who in enumerate(strangers(count, start=start))
    ]
    for at in range(0, count, 500):
        h.membership.rx_frame(via.node_id, gossip(*rows[at:at + 500]))
    return rows


class FlowControlTests(SynchronousTestCase):
    """
    Finding A: gossip to a link that does not read waits (rows stay
    dirty, bounded by the table) instead of filling its transport.
    """

    def setUp(self):
        self.h = Harness()
        self.h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        self.h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        self.carol = row(CAROL, 1)
        self.h.membership.rx_frame(DAVE.node_id, gossip(self.carol))
        self.h.advance(0.2)
        self.h.output.clear()

    def test_no_gossip_while_link_paused(self):
        """
        Heartbeat replays for a link whose transport paused our producer
        send it nothing; once it drains, it gets the newest rows once.
        """
        self.h.output.stalled.add(BOB.node_id)
        for hb in range(1, 30):
            self.h.membership.rx_frame(DAVE.node_id, gossip(dict(self.carol, hb=hb)))
            self.h.advance(0.2)
        self.assertEqual(self.h.output.sent(BOB.node_id), [])
        self.h.output.stalled.clear()
        self.h.advance(0.2)
        sent = [r for r in self.h.output.sent(BOB.node_id) if r["id"] == CAROL.node_id]
        self.assertEqual([r["hb"] for r in sent], [29])

    def test_flush_capped_per_tick(self):
        """
        A link gets at most FLUSH_ROWS_PER_TICK rows per tick whatever the
        table size; the rest follow on the next ticks.
        """
        fill(self.h, 900)
        self.h.output.clear()
        self.h.membership.link_up(CAROL.node_id, "carol", "10.0.0.9:9000", outbound=True)
        first = self.h.output.sent(CAROL.node_id)
        self.assertLessEqual(len(first), FLUSH_ROWS_PER_TICK)
        self.assertLess(len(first), 900)
        self.h.advance(1.0)
        ids = {r["id"] for r in self.h.output.sent(CAROL.node_id)}
        # The fakes, carol and this node (bob and dave are known only by
        # their links, which are not gossiped).
        self.assertEqual(len(ids), 900 + 2)

    def test_heartbeat_replays_over_budget_ignored(self):
        """
        Heartbeat-only rows beyond about one per member per heartbeat
        interval (burst: twice the table, at least one frame) are ignored,
        not fatal; the budget refills with time.
        """
        logged = capture_log(self)
        beats = [dict(self.carol, hb=hb) for hb in range(1, 1001)]
        self.h.membership.rx_frame(BOB.node_id, gossip(*beats))
        self.assertEqual(self.h.membership.dropped_rows, 0)
        more = [dict(self.carol, hb=hb) for hb in range(1001, 2001)]
        self.h.membership.rx_frame(BOB.node_id, gossip(*more))
        self.assertEqual(self.h.membership.dropped_rows, 1000)
        self.assertEqual(len(lines(logged, "over its budget")), 1)
        self.h.clock.advance(1.0)
        self.h.membership.rx_frame(BOB.node_id, gossip(*more[:10]))
        # Three records (carol, bob, dave), plus one: 4 tokens a second.
        self.assertEqual(self.h.membership.dropped_rows, 1000 + 10 - 4)


class NodeFlowControlTests(SynchronousTestCase):
    """
    Finding A through a real node: while a link's transport has paused
    the node's producer, no gossip goes out on it; when it resumes, the
    rows that changed meanwhile go out.
    """

    def test_gossip_waits_for_paused_link(self):
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice_side, _ = net.link(alice, bob)
        net.tick(times=5)
        sent = []
        real = alice_side.send_frame
        self.patch(alice_side, "send_frame", lambda frame: sent.append(frame) or real(frame))
        alice.links.producer(alice_side).pauseProducing()
        alice.membership.set_name("alice2")
        net.tick(times=15)
        self.assertEqual([f for f in sent if f["type"] == "gossip"], [])
        alice.links.producer(alice_side).resumeProducing()
        net.tick()
        rows = [r for f in sent if f["type"] == "gossip" for r in f["rows"]]
        self.assertIn(alice.node_id, [r["id"] for r in rows])


class CheckBudgetTests(SynchronousTestCase):
    """
    Finding C: signature checks are budgeted across all links, so many
    links cannot together spend more than one burst in one reactor turn.
    """

    def test_global_verify_budget(self):
        h = Harness()
        peers = [BOB, CAROL, DAVE]
        for who in peers:
            h.membership.link_up(who.node_id, who.node_id[:4], None, outbound=False)
        per_link = NEW_MEMBERS_BURST // 2
        fakes = [row(who) for who in strangers(per_link * len(peers))]
        for i, who in enumerate(peers):
            h.membership.rx_frame(
                who.node_id, gossip(*fakes[i * per_link:(i + 1) * per_link])
            )
        learned = len(h.membership.members()) - len(peers)
        self.assertEqual(learned, GLOBAL_VERIFIES_BURST)
        self.assertEqual(h.membership.dropped_rows, per_link * len(peers) - learned)


class LivenessTests(SynchronousTestCase):
    """
    Finding B: a linked member this node hears any frame from, or whose
    link this node is itself not reading, is not suspected.
    """

    def setUp(self):
        self.h = Harness()
        self.h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        self.h.membership.rx_frame(BOB.node_id, gossip(row(BOB, 1, hb=1)))

    def test_heard_from_keeps_linked_member_alive(self):
        """
        Bob's heartbeat does not advance for 20 s (his gossip waits behind
        entries), but frames from him keep coming: he stays alive.
        """
        for _ in range(20):
            self.h.advance(1.0)
            self.h.membership.heard_from(BOB.node_id)
        self.assertEqual(self.h.state(BOB), ALIVE)

    def test_silent_linked_member_still_suspected(self):
        """
        Without any frame (a frozen peer), the time-out still applies.
        """
        self.h.advance(self.h.membership.config.failure_timeout_s + 0.4)
        self.assertEqual(self.h.state(BOB), SUSPECT)

    def test_heard_from_unlinked_member_ignored(self):
        """
        Only a linked peer's frames count (they come from it): an unlinked
        member's last sign of life stays what gossip said.
        """
        self.h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1)))
        learned = self.h.membership.member(CAROL.node_id).last_heard
        for _ in range(6):
            self.h.advance(1.0)
            self.h.membership.heard_from(CAROL.node_id)
        self.assertEqual(self.h.membership.member(CAROL.node_id).last_heard, learned)
        self.assertEqual(self.h.state(CAROL), ALIVE)


class NodeLivenessTests(SynchronousTestCase):
    """
    Finding B through a real node: alice's gossip stops reaching bob (it
    waits behind entries bob is slow to read), yet bob keeps her alive
    while frames of any kind arrive from her, or while bob himself is not
    reading her link.
    """

    def setUp(self):
        self.net = Network(self)
        self.alice, self.bob = self.net.node("alice"), self.net.node("bob")
        self.bob_side, _ = self.net.link(self.alice, self.bob)[::-1]
        self.net.tick(times=10)
        self.assertEqual(self.bob.membership.member(self.alice.node_id).state, ALIVE)
        # From now on nothing alice sends reaches bob's membership.
        self.net.pumps.clear()
        self.timeout_s = self.bob.membership.config.failure_timeout_s

    def bobs_view_of_alice(self):
        return self.bob.membership.member(self.alice.node_id).state

    def test_any_frame_proves_alive(self):
        for _ in range(int(self.timeout_s * 2 / 0.2)):
            self.bob.links.rx_frame(self.bob_side, {"type": "prune"})
            self.net.tick()
        self.assertEqual(self.bobs_view_of_alice(), ALIVE)

    def test_held_link_not_blamed(self):
        self.bob_side.hold(self.timeout_s * 3)
        self.net.tick(times=int(self.timeout_s * 2 / 0.2))
        self.assertEqual(self.bobs_view_of_alice(), ALIVE)

    def test_silence_still_suspected(self):
        """
        Neither frames nor a hold: the time-out applies as before.
        """
        self.net.tick(times=int(self.timeout_s * 2 / 0.2))
        self.assertNotEqual(self.bobs_view_of_alice(), ALIVE)


class ProvenTests(SynchronousTestCase):
    """
    Finding D: proven means this node completed a handshake with the
    member; proven rows go out first and proven members are dialled first.
    """

    def test_replay_on_two_links_does_not_prove(self):
        h = Harness(MembershipConfig(max_members=4))
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1)))
        h.membership.rx_frame(DAVE.node_id, gossip(row(CAROL, 1, hb=1)))
        fakes = strangers(10)
        for who in fakes:
            h.membership.rx_frame(BOB.node_id, gossip(row(who)))
        kept = {m.node_id for m in h.membership.members()}
        self.assertEqual(kept, {BOB.node_id, DAVE.node_id, fakes[-2].node_id, fakes[-1].node_id})

    def test_proven_rows_sent_first(self):
        """
        A new link gets this node's row and proven members' rows before
        any unproven one.
        """
        h = Harness()
        h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        fakes = fill(h, 400)
        h.membership.rx_frame(DAVE.node_id, gossip(row(CAROL, 1)))
        h.membership.link_up(CAROL.node_id, "carol", "10.0.0.9:9000", outbound=True)
        h.output.clear()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        order = [r["id"] for r in h.output.sent(BOB.node_id)]
        fake_ids = {r["id"] for r in fakes}
        first_fake = min(i for i, node_id in enumerate(order) if node_id in fake_ids)
        self.assertEqual(
            set(order[:first_fake]), {ME.node_id, CAROL.node_id}
        )

    def test_proven_members_dialled_first(self):
        """
        With hundreds of gossiped addresses, the one member this node
        has had a handshake with is the one it dials.
        """
        h = Harness(MembershipConfig(max_links=1, failure_timeout_s=60))
        h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        fill(h, 300)
        h.membership.link_up(CAROL.node_id, "carol", "10.0.0.9:9000", outbound=True)
        h.membership.rx_frame(CAROL.node_id, gossip(row(CAROL, 1)))
        # The link to carol lasted (a link closed at once backs off).
        h.clock.advance(h.membership.config.connect_retry_s)
        h.membership.link_down(CAROL.node_id)
        h.membership.link_down(DAVE.node_id)
        h.output.clear()
        h.advance(0.2)
        self.assertEqual(h.output.of("connect")[0], ("connect", "10.0.0.9:9000"))


class RedialTests(SynchronousTestCase):
    """
    A full node accepts the handshake and then refuses the link: the
    dialler backs off instead of redialling it every tick (seen under the
    table flood: an honest node redialled a crowded seed five times a
    second and never got the joiner's row).
    """

    def test_link_refused_at_once_backs_off(self):
        # Long time-outs: bob stays alive (a candidate) throughout.
        h = Harness(MembershipConfig(max_links=1, failure_timeout_s=60))
        h.membership.rx_frame(DAVE.node_id, gossip(row(BOB, 1, addr="10.0.0.2:9000")))
        h.advance(0.2)
        self.assertEqual(h.output.of("connect"), [("connect", "10.0.0.2:9000")])
        h.output.clear()
        h.membership.link_up(BOB.node_id, "bob", "10.0.0.2:9000", outbound=True)
        h.membership.link_down(BOB.node_id)
        h.advance(1.0)
        self.assertEqual(h.output.of("connect"), [])
        h.advance(h.membership.config.connect_retry_s)
        self.assertEqual(h.output.of("connect"), [("connect", "10.0.0.2:9000")])


class FakeLinks:
    member_watchers = ()


class LogVolumeTests(SynchronousTestCase):
    """
    Finding F: thousands of fake members do not write thousands of lines.
    """

    def test_suspecting_lines_limited(self):
        """
        Hundreds of members suspected at once (each one's only link
        closed, no other link to ask) write one line.
        """
        logged = capture_log(self)
        h = Harness()
        h.membership.link_up(DAVE.node_id, "dave", "10.0.0.4:9000", outbound=True)
        fakes = fill(h, 300)
        h.membership.link_down(DAVE.node_id)
        for fake in fakes:
            h.membership.link_up(fake["id"], fake["name"], fake["addr"], outbound=False)
            h.membership.link_down(fake["id"])
        suspected = [m for m in h.membership.members() if m.state == SUSPECT]
        self.assertEqual(len(suspected), 300)
        self.assertEqual(len(lines(logged, "suspecting")), 1)

    def test_member_change_lines_limited(self):
        """
        The node logs the first MEMBER_LOG_BURST member changes, then one
        line per kind of change per interval with the count held back.
        """
        logged = capture_log(self)
        clock = Clock()
        output = links_module._MembershipOutput(FakeLinks(), clock)
        burst = links_module.MEMBER_LOG_BURST
        for who in strangers(burst + 200):
            output.member_changed(Member(who.node_id, "f", None, 1, ALIVE, False, 0.0), None)
            output.member_changed(Member(who.node_id, "f", None, 1, SUSPECT, False, 0.0), ALIVE)
        self.assertEqual(len(lines(logged, "member {who}")), burst + 2)
        # Ten seconds refill ten lines; the eleventh is the limited kind's
        # next line, which says how many were held back.
        clock.advance(10)
        for _ in range(11):
            output.member_changed(Member(BOB.node_id, "b", None, 1, SUSPECT, False, 0.0), ALIVE)
        logged_now = lines(logged, "member {who}")
        self.assertEqual(len(logged_now), burst + 2 + 11)
        # Each kind: burst + 200 changes, burst / 2 of them through the
        # first lines, one through the limiter, the rest held back.
        self.assertEqual(logged_now[-1]["held"], burst + 200 - burst // 2 - 1)
