"""
The conformance suite of L{IMembershipOutput}: what L{Membership} relies
on from whatever carries its outputs.  One mixin, run against every
implementation and fake (see C{tests/unit/test_membership_output.py}).

To apply it to another implementation, mix L{IMembershipOutputContract}
into a L{twisted.trial.unittest.SynchronousTestCase} and define:

  - C{make_output()}: return C{(output, peer_id)}, an output whose node
    has one open link, to C{peer_id}, whose transport takes more;
  - C{delivered(peer_id)}: the frames that reached C{peer_id} through
    the output so far, in order (do whatever the implementation needs to
    deliver them first: run a simulation, pump a fake transport);
  - C{dials()}: the addresses the output opened (or started opening)
    links to, in order;
  - C{closed()}: the peer ids whose links the output closed, in order;
  - C{changes()}: C{(node_id, old_state, state)} for every
    C{member_changed} the output passed on, in order;
  - C{stall(peer_id)}: make that link's transport full (its producer
    paused), or leave it C{None} if the implementation's links never fill.
"""

from typing import Callable, List, Optional, Tuple

from nacl.signing import SigningKey
from zope.interface.verify import verifyObject

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.membership import ALIVE, SUSPECT, IMembershipOutput, Member
from p2pchat.mesh.membership.rows import base_state, make_row, sign_row

#: A member the frames and changes are about.
CAROL = Identity(SigningKey(bytes([3]) * 32))


def carol_row(heartbeat: int) -> dict:
    """
    @return: CAROL's signed row at incarnation 1 with C{heartbeat}.
    """
    sig = sign_row(CAROL.sign, CAROL.node_id, 1, "carol", "10.0.0.3:9000", base_state(ALIVE))
    return make_row(CAROL.node_id, 1, ALIVE, heartbeat, "carol", "10.0.0.3:9000", sig)


class IMembershipOutputContract:
    """
    What every L{IMembershipOutput} does; see the module's docstring for
    the methods a test case defines.
    """

    stall: Optional[Callable[[str], None]] = None

    def make_output(self) -> Tuple[IMembershipOutput, str]:
        raise NotImplementedError(f"{type(self).__name__} must define make_output")

    def delivered(self, peer_id: str) -> List[dict]:
        raise NotImplementedError(f"{type(self).__name__} must define delivered")

    def dials(self) -> List[str]:
        raise NotImplementedError(f"{type(self).__name__} must define dials")

    def closed(self) -> List[str]:
        raise NotImplementedError(f"{type(self).__name__} must define closed")

    def changes(self) -> List[Tuple[str, Optional[str], str]]:
        raise NotImplementedError(f"{type(self).__name__} must define changes")

    def test_provides_interface(self):
        """
        The output provides every method of L{IMembershipOutput}.
        """
        output, _ = self.make_output()
        self.assertTrue(verifyObject(IMembershipOutput, output))

    def test_open_link_ready(self):
        """
        A link whose transport takes more is ready: exactly C{True}.
        """
        output, peer_id = self.make_output()
        self.assertIs(output.ready(peer_id), True)

    def test_stalled_link_not_ready(self):
        """
        A link whose transport is full is not ready: membership keeps the
        rows for later.
        """
        if self.stall is None:
            self.skipTest(f"{type(self).__name__}'s links never fill")
        output, peer_id = self.make_output()
        self.stall(peer_id)
        self.assertIs(output.ready(peer_id), False)

    def test_send_delivers_in_order(self):
        """
        Frames sent to a linked peer reach it, whole and in order.
        """
        output, peer_id = self.make_output()
        frames = [wire.gossip([carol_row(1)]), wire.gossip([carol_row(2), carol_row(3)])]
        for frame in frames:
            self.assertIsNone(output.send(peer_id, frame))
        self.assertEqual(self.delivered(peer_id), frames)

    def test_connect_dials(self):
        """
        C{connect} opens (or starts opening) a link to the address.
        """
        output, _ = self.make_output()
        self.assertIsNone(output.connect("10.0.0.3:9000"))
        self.assertEqual(self.dials(), ["10.0.0.3:9000"])

    def test_disconnect_closes(self):
        """
        C{disconnect} closes the link to the peer, and only that one.
        """
        output, peer_id = self.make_output()
        self.assertIsNone(output.disconnect(peer_id, "more than 7 links"))
        self.assertEqual(self.closed(), [peer_id])

    def test_member_changed_passed_on(self):
        """
        Every change is passed on, in order: a new member (C{old_state}
        C{None}), then a state change.
        """
        output, _ = self.make_output()
        for old_state, state in ((None, ALIVE), (ALIVE, SUSPECT)):
            member = Member(CAROL.node_id, "carol", "10.0.0.3:9000", 1, state, False, 0.0, True)
            self.assertIsNone(output.member_changed(member, old_state))
        self.assertEqual(
            self.changes(), [(CAROL.node_id, None, ALIVE), (CAROL.node_id, ALIVE, SUSPECT)]
        )
