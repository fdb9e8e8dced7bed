"""
Tests for probing (L{p2pchat.mesh.membership.probe}) through one whole
L{Membership} on a L{Clock} with a recording output, asserting the exact
frames: probe, probe again and ask others (probe-req), suspect; answers
relayed for others; a lost link as a fast hint; Lifeguard's shrinking
suspicion; refutation.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh import wire
from p2pchat.mesh.membership import ALIVE, DEAD, SUSPECT
from p2pchat.mesh.membership.admission import PROBE_BURST
from p2pchat.mesh.membership.probe import PROBE_ATTEMPTS
from tests.unit.test_membership import BOB, CAROL, DAVE, ME, Harness, gossip, row
from tests.unit.test_membership_attacks import strangers


def linked(*peers):
    """
    @return: a L{Harness} linked to C{peers} (each known by its signed
        row), its output cleared.
    """
    h = Harness()
    for who, port in zip(peers, range(9002, 9010)):
        h.membership.link_up(who.node_id, f"n{who.node_id[:4]}", f"10.0.0.2:{port}", True)
        h.membership.rx_frame(who.node_id, gossip(row(who, addr=f"10.0.0.2:{port}")))
    h.output.clear()
    return h


def frames(h, kinds=("probe", "probe-ack", "probe-req", "unlink")):
    """
    @return: the probe frames sent, as C{(peer, frame)}.
    """
    return [
        (call[1], call[2]) for call in h.output.calls
        if call[0] == "send" and call[2]["type"] in kinds
    ]


def answering(h, seconds):
    """
    Advance C{h} by C{seconds}, every linked peer answering each probe
    at once (as live peers do).
    """
    interval = h.membership.config.gossip_interval_s
    for _ in range(round(seconds / interval)):
        start = len(h.output.calls)
        h.advance(interval)
        for call in h.output.calls[start:]:
            if call[0] == "send" and call[2]["type"] == "probe":
                h.membership.rx_frame(call[1], wire.probe_ack(call[2]["seq"]))


def state(h, node_id):
    return h.membership.member(node_id).state


class ProbeTests(SynchronousTestCase):
    """
    Probing one linked peer per C{probe_interval_s}.
    """

    def test_answered_probe(self):
        """
        The first probe goes out at the first tick after
        C{probe_interval_s}; its answer keeps the member alive and the
        next probe waits for the next interval.
        """
        h = linked(BOB)
        h.advance(0.4)
        self.assertEqual(h.output.calls, [])
        h.advance(0.2)
        self.assertEqual(h.output.calls, [("send", BOB.node_id, wire.probe(1))])
        h.membership.rx_frame(BOB.node_id, wire.probe_ack(1))
        h.advance(0.4)
        self.assertEqual(frames(h), [(BOB.node_id, wire.probe(1))])
        h.advance(0.2)
        self.assertEqual(frames(h)[1:], [(BOB.node_id, wire.probe(2))])
        self.assertEqual(h.state(BOB), ALIVE)

    def test_any_frame_answers(self):
        """
        Any frame from the member after the probe went out (the node
        calls C{heard_from} for each) answers it.
        """
        h = linked(BOB)
        h.advance(0.6)
        h.clock.advance(0.1)
        h.membership.heard_from(BOB.node_id)
        h.advance(1.0)
        self.assertEqual(h.state(BOB), ALIVE)
        self.assertNotIn(SUSPECT, [c[3] for c in h.output.of("member_changed")])

    def test_unanswered_probe_then_probe_req_then_suspect(self):
        """
        No answer within C{probe_timeout_s}: probe again and ask the other
        linked peer to probe (a C{probe-req}); after L{PROBE_ATTEMPTS}
        rounds, suspect, and gossip it; dead C{failure_timeout_s} later
        (nobody confirmed).
        """
        h = linked(BOB, DAVE)
        h.advance(0.6)
        [(target, first)] = frames(h)
        other = DAVE.node_id if target == BOB.node_id else BOB.node_id
        self.assertEqual(first, wire.probe(1))
        h.advance(0.4)
        h.advance(0.4)
        self.assertEqual(PROBE_ATTEMPTS, 3)
        self.assertEqual(
            frames(h),
            [
                (target, wire.probe(1)),
                (target, wire.probe(1)),
                (other, wire.probe_req(1, target)),
                (target, wire.probe(1)),
                (other, wire.probe_req(1, target)),
            ],
        )
        h.output.clear()
        h.advance(0.4)
        self.assertEqual(
            [
                call if call[0] == "member_changed"
                else (call[0], call[1], [(r["id"], r["state"]) for r in call[2]["rows"]])
                for call in h.output.calls
                if call[0] == "member_changed" or call[2]["type"] == "gossip"
            ],
            [
                ("member_changed", target, ALIVE, SUSPECT),
                ("send", BOB.node_id, [(target, SUSPECT)]),
                ("send", DAVE.node_id, [(target, SUSPECT)]),
            ],
        )
        h.advance(h.membership.config.failure_timeout_s - 0.2)
        self.assertEqual(state(h, target), SUSPECT)
        h.advance(0.2)
        self.assertEqual(state(h, target), DEAD)

    def test_relayed_answer(self):
        """
        A C{probe-ack} naming the member, relayed by a peer asked with a
        C{probe-req}, answers the probe.
        """
        h = linked(BOB, DAVE)
        h.advance(0.6)
        [(target, _)] = frames(h)
        other = DAVE.node_id if target == BOB.node_id else BOB.node_id
        h.advance(0.4)
        h.membership.rx_frame(other, wire.probe_ack(1, target))
        h.advance(0.4)
        self.assertEqual(state(h, target), ALIVE)

    def test_ack_of_another_seq_or_member_ignored(self):
        """
        An answer with another number, or naming another member, answers
        nothing.
        """
        h = linked(BOB)
        h.advance(0.6)
        h.membership.rx_frame(BOB.node_id, wire.probe_ack(2))
        h.membership.rx_frame(BOB.node_id, wire.probe_ack(1, CAROL.node_id))
        h.advance(1.2)
        self.assertEqual(h.state(BOB), SUSPECT)


class ServingTests(SynchronousTestCase):
    """
    Answering probes, and probing for others.
    """

    def test_probe_answered(self):
        h = linked(BOB)
        h.membership.rx_frame(BOB.node_id, wire.probe(41))
        self.assertEqual(h.output.calls, [("send", BOB.node_id, wire.probe_ack(41))])

    def test_probe_req_relayed(self):
        """
        A C{probe-req} about a linked member: probe it with our own
        number, and relay its answer with the requester's number.
        """
        h = linked(BOB, DAVE)
        h.membership.rx_frame(DAVE.node_id, wire.probe_req(7, BOB.node_id))
        self.assertEqual(h.output.calls, [("send", BOB.node_id, wire.probe(1))])
        h.membership.rx_frame(BOB.node_id, wire.probe_ack(1))
        self.assertEqual(
            h.output.calls[1:], [("send", DAVE.node_id, wire.probe_ack(7, BOB.node_id))]
        )
        # Once only.
        h.membership.rx_frame(BOB.node_id, wire.probe_ack(1))
        self.assertEqual(len(h.output.calls), 2)

    def test_probe_req_about_self_or_unlinked(self):
        """
        A C{probe-req} about this node is answered at once; about a member
        this node is not linked to (or the requester itself), ignored.
        """
        h = linked(BOB)
        h.membership.rx_frame(BOB.node_id, wire.probe_req(7, ME.node_id))
        h.membership.rx_frame(BOB.node_id, wire.probe_req(8, CAROL.node_id))
        h.membership.rx_frame(BOB.node_id, wire.probe_req(9, BOB.node_id))
        self.assertEqual(
            h.output.calls, [("send", BOB.node_id, wire.probe_ack(7, ME.node_id))]
        )

    def test_probe_budget(self):
        """
        A link's probes and probe-reqs beyond L{PROBE_BURST} at once are
        ignored (not fatal); the bucket refills.
        """
        h = linked(BOB)
        for seq in range(PROBE_BURST + 5):
            h.membership.rx_frame(BOB.node_id, wire.probe(seq))
        self.assertEqual(len(h.output.calls), PROBE_BURST)
        h.clock.advance(1.0)
        h.membership.rx_frame(BOB.node_id, wire.probe(99))
        self.assertEqual(h.output.calls[-1], ("send", BOB.node_id, wire.probe_ack(99)))


class LinkLossTests(SynchronousTestCase):
    """
    A lost link is a fast hint.
    """

    def test_no_other_link_suspect_at_once(self):
        h = linked(BOB)
        answering(h, 10.0)
        h.output.clear()
        h.membership.link_down(BOB.node_id)
        self.assertEqual(h.output.of("member_changed"), [
            ("member_changed", BOB.node_id, ALIVE, SUSPECT),
        ])

    def test_other_links_asked(self):
        """
        With other links, each is asked (a C{probe-req}); unanswered
        within C{probe_timeout_s}, the member is suspect.
        """
        h = linked(BOB, DAVE)
        answering(h, 10.0)
        h.output.clear()
        h.membership.link_down(BOB.node_id)
        [(peer, asked)] = frames(h)
        self.assertEqual((peer, asked), (DAVE.node_id, wire.probe_req(asked["seq"], BOB.node_id)))
        h.advance(0.2)
        self.assertEqual(h.state(BOB), ALIVE)
        h.advance(0.4)
        self.assertEqual(h.state(BOB), SUSPECT)

    def test_other_link_reaches_it(self):
        h = linked(BOB, DAVE)
        answering(h, 10.0)
        h.output.clear()
        h.membership.link_down(BOB.node_id)
        [(_, asked)] = frames(h)
        h.membership.rx_frame(DAVE.node_id, wire.probe_ack(asked["seq"], BOB.node_id))
        h.advance(2.0)
        self.assertEqual(h.state(BOB), ALIVE)

    def test_unlink_said_first(self):
        """
        A peer that says C{unlink} before closing is not suspected for it.
        """
        h = linked(BOB)
        answering(h, 10.0)
        h.membership.rx_frame(BOB.node_id, wire.unlink())
        h.membership.link_down(BOB.node_id)
        h.advance(2.0)
        self.assertEqual(h.state(BOB), ALIVE)


class StallTests(SynchronousTestCase):
    """
    A node that stalled blames nobody for what it could not read.
    """

    def test_late_tick_restarts_probes(self):
        h = linked(BOB)
        h.advance(0.6)
        h.clock.advance(3.0)
        h.membership.tick()
        h.membership.rx_frame(BOB.node_id, wire.probe_ack(1))
        h.advance(0.2)
        self.assertEqual(h.state(BOB), ALIVE)

    def test_no_death_declared_on_a_late_tick(self):
        """
        A suspect whose time-out passed while this node stalled is not
        declared dead at the late tick (the refutation may wait unread),
        but at the next one.
        """
        h = linked(BOB)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1)))
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1, SUSPECT)))
        h.clock.advance(10.0)
        h.membership.tick()
        self.assertEqual(h.state(CAROL), SUSPECT)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 2)))
        h.advance(0.2)
        self.assertEqual(h.state(CAROL), ALIVE)


class SuspicionTests(SynchronousTestCase):
    """
    Lifeguard's suspicion through the whole object.
    """

    def test_confirmations_bring_death_nearer(self):
        """
        A suspect claim from one peer: dead after C{failure_timeout_s};
        the same claim from three more peers: after 5/8 of it.
        """
        self.assertEqual(Harness().membership.config.failure_timeout_s, 4.0)
        # Ticks come every 0.2 s (sums of 0.2 are not exact): dead by the
        # first one after 4 s, and after 2.5 s.
        for confirmers, still, dead in (((BOB,), 3.8, 4.2), (tuple(strangers(4)), 2.4, 2.6)):
            h = Harness()
            h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1)))
            h.clock.advance(10.0)
            for who in confirmers:
                h.membership.rx_frame(who.node_id, gossip(row(CAROL, 1, SUSPECT)))
            h.advance(still)
            self.assertEqual(h.state(CAROL), SUSPECT)
            h.advance(dead - still)
            self.assertEqual(h.state(CAROL), DEAD)

    def test_refuted_before_death(self):
        """
        The member's refutation (a higher incarnation, signed) clears the
        suspicion and its confirmations.
        """
        h = linked(BOB)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1)))
        h.clock.advance(10.0)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 1, SUSPECT)))
        h.advance(1.0)
        h.membership.rx_frame(BOB.node_id, gossip(row(CAROL, 2)))
        h.advance(10.0)
        self.assertEqual(h.state(CAROL), ALIVE)
        self.assertEqual(
            [c[2:] for c in h.output.of("member_changed") if c[1] == CAROL.node_id],
            [(None, ALIVE), (ALIVE, SUSPECT), (SUSPECT, ALIVE)],
        )


class WireTests(SynchronousTestCase):
    """
    The probe frames on the wire (L{wire.parse_frame}).
    """

    def test_round_trip(self):
        for frame in (
            wire.probe(0),
            wire.probe_ack(2**53),
            wire.probe_ack(5, BOB.node_id),
            wire.probe_req(18, BOB.node_id),
            wire.unlink(),
        ):
            self.assertEqual(wire.parse_frame(wire.encode_frame(frame)), frame)
        self.assertEqual(wire.encode_frame(wire.probe(17)), b'{"seq":17,"type":"probe"}')

    def test_bad_frames(self):
        for line, reason in (
            (b'{"type":"probe"}', "probe.seq is not an integer in 0..2**53"),
            (b'{"type":"probe","seq":-1}', "probe.seq is not an integer in 0..2**53"),
            (b'{"type":"probe-ack","seq":true}', "probe-ack.seq is not an integer in 0..2**53"),
            (b'{"type":"probe-ack","seq":1.5}', "probe-ack.seq is not an integer in 0..2**53"),
            (b'{"type":"probe-req","seq":1}', "probe-req.target is not a node id"),
            (b'{"type":"probe-ack","seq":1,"target":"bob"}', "probe-ack.target is not a node id"),
        ):
            error = self.assertRaises(wire.FrameError, wire.parse_frame, line)
            self.assertEqual(str(error), reason)
