"""
The L{IMembershipOutput} conformance suite (L{tests.membership_output})
run against every implementation and fake: the recording fake the
membership tests use, and the simulation's output.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.testing.simulation import SimOutput, Simulation
from tests.membership_output import IMembershipOutputContract
from tests.unit.test_membership import BOB, RecordingOutput


class RecordingOutputTests(IMembershipOutputContract, SynchronousTestCase):
    """
    L{RecordingOutput}, the fake that membership's unit tests assert
    exact call sequences on.
    """

    def make_output(self):
        self.output = RecordingOutput()
        return self.output, BOB.node_id

    def stall(self, peer_id):
        self.output.stalled.add(peer_id)

    def delivered(self, peer_id):
        return [call[2] for call in self.output.of("send") if call[1] == peer_id]

    def dials(self):
        return [call[1] for call in self.output.of("connect")]

    def closed(self):
        return [call[1] for call in self.output.of("disconnect")]

    def changes(self):
        return [call[1:] for call in self.output.of("member_changed")]


class Endpoint:
    """
    Stands in for a simulated node's L{Membership}: records what the
    simulation delivers to it, so the frames seen are exactly those the
    output under test sent.
    """

    hidden = False

    def __init__(self):
        self.frames = []
        self.links_down = []
        self.heard = []

    def tick(self):
        pass

    def link_up(self, peer_id, name, address, outbound):
        pass

    def link_down(self, peer_id):
        self.links_down.append(peer_id)

    def heard_from(self, peer_id):
        # The simulation, like the node, notes every frame's sender first.
        self.heard.append(peer_id)

    def rx_frame(self, peer_id, frame):
        if self.heard[-1:] != [peer_id]:
            raise AssertionError(f"a frame from {peer_id[:8]} not noted as heard from first")
        self.frames.append((peer_id, frame))


class SimOutputTests(IMembershipOutputContract, SynchronousTestCase):
    """
    L{SimOutput}, which carries one simulated node's outputs over the
    simulation's in-memory links (encoded and parsed as real lines).
    """

    def make_output(self):
        self.sim = Simulation(seed=0, wire_check=True)
        self.alice, self.bob = self.sim.add_node("alice"), self.sim.add_node("bob")
        # Neither end runs membership: what arrives is what the output sent.
        self.alice.membership, self.bob.membership = Endpoint(), Endpoint()
        self.sim.link(self.alice, self.bob)
        return SimOutput(self.sim, self.alice), self.bob.node_id

    def delivered(self, peer_id):
        self.sim.run(1.0)
        receiver = self.sim.by_id[peer_id].membership
        return [frame for sender, frame in receiver.frames if sender == self.alice.node_id]

    def dials(self):
        return [address for _, who, address in self.sim.connects if who == self.alice.node_id]

    def closed(self):
        closed = [peer for _, who, peer in self.sim.disconnects if who == self.alice.node_id]
        # The close reaches the far end after the frames sent before it.
        self.sim.run(1.0)
        # And the link is really gone: both ends heard of it.
        self.assertFalse(self.sim.linked(self.alice.node_id, self.bob.node_id))
        self.assertEqual(self.bob.membership.links_down, [self.alice.node_id])
        return closed

    def changes(self):
        return [
            change[2:] for change in self.sim.changes if change[1] == self.alice.node_id
        ]
