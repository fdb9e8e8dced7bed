"""
A link this node stopped reading (its entry budget ran dry) is not a
silent member: the member's frames wait unread because of this node.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh.membership import ALIVE
from tests.nodes import Network


class HeldLinkTests(SynchronousTestCase):
    def test_member_on_a_held_link_is_not_suspected(self):
        """
        Found with the adversarial harness: attackers flood alice on
        several links; she relays to bob faster than bob's live budget for
        her link, so bob stops reading it.  Bob then heard nothing from
        alice for longer than failure_timeout_s and showed her suspect,
        then dead (and took an attacker's dead claim with her genuine
        signature at once), while she was alive and linked to him.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        _, bob_side = net.link(alice, bob)
        net.tick(seconds=0.2, times=5)
        bob_side.hold(9.0)
        for _ in range(60):
            net.tick(seconds=0.2)
            self.assertEqual(bob.membership.member(alice.node_id).state, ALIVE)
        self.assertFalse(bob_side.held)
