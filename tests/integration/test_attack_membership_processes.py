"""
Membership attacks against real C{twistd -n p2pchat} processes, by a raw
client that speaks the protocol and holds no honest node's key.
"""

import json
import re

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.identity import short_id
from p2pchat.mesh.membership.rows import ALIVE, DEAD, base_state, sign_row
from p2pchat.testing.rawpeer import RawPeer
from tests.integration.test_membership_processes import parse_peers
from tests.processes import NodeTestMixin
from tests.unit.test_membership_attacks import strangers

# Rows per frame that keep a line well under wire.MAX_LINE_BYTES.
ROWS_PER_FRAME = 150


def row_of(identity, inc, name, addr, state=ALIVE, hb=0, signer=None):
    """
    @return: a gossip row about C{identity}, signed by C{signer} (by
        default the member itself).
    """
    signer = signer or identity
    return {
        "id": identity.node_id, "inc": inc, "state": state, "hb": hb, "name": name,
        "addr": addr,
        "sig": sign_row(signer.sign, identity.node_id, inc, name, addr, base_state(state)),
    }


def row_about(raw, name):
    """
    Read what the node sends C{raw} until a gossip row about the member
    called C{name} arrives.

    @return: that row.
    """
    while True:
        line = raw.read_line()
        if not line:
            raise AssertionError(f"link closed before a row about {name} came")
        frame = json.loads(line)
        for row in frame.get("rows", ()) if frame.get("type") == "gossip" else ():
            if row["name"] == name:
                return row


class MembershipAttackTests(NodeTestMixin, SynchronousTestCase):
    """
    One raw peer cannot take over a member or cut joiners off.
    """

    def peers(self, console):
        return {row.short: row for row in parse_peers(console.reply("/peers"))}

    def test_forged_rows_do_not_take_over_bob(self):
        """
        Finding 5.  A raw peer sends alice two rows about bob in one frame
        that raise his incarnation by 2**32 and 2**33 (renaming him
        mallory at the raw peer's address, then dead): unsigned, then
        signed with the raw peer's own key.  Alice closes each link with
        a bad-frame line naming the signature; bob stays alive and named
        bob on alice; a third raw peer whose hello says "bob" does not
        capture the name: C{/msg bob} from alice reaches the real bob.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        raw = RawPeer(alice.peer_address, name="mallory")
        real = row_about(raw, "bob")
        bob_id, inc = real["id"], real["inc"]

        class Bob:
            node_id = bob_id

        forged = [
            dict(real, inc=inc + 2**32, name="mallory", addr="127.0.0.1:1"),
            dict(real, inc=inc + 2**33, state=DEAD),
        ]
        for row in forged:
            row.pop("sig", None)
        raw.send({"type": "gossip", "rows": forged})
        self.assertEqual(raw.frames_until_closed()[-1]["type"], "error")
        alice.wait_for_log(
            rb"closing link with mallory .*gossip row for "
            + short_id(bob_id).encode() + rb": sig is not"
        )
        raw = RawPeer(alice.peer_address, name="mallory")
        signed_by_raw = [
            row_of(Bob, inc + 2**32, "mallory", "127.0.0.1:1", signer=raw.identity),
            row_of(Bob, inc + 2**33, "mallory", "127.0.0.1:1", DEAD, signer=raw.identity),
        ]
        raw.send({"type": "gossip", "rows": signed_by_raw})
        self.assertEqual(raw.frames_until_closed()[-1]["type"], "error")
        alice.wait_for_log(rb"signature is not its member's")
        impostor = RawPeer(alice.peer_address, name="bob")
        alice.wait_for_log(rb"link up with bob \(" + short_id(impostor.identity.node_id).encode())
        alice_console, bob_console = self.console(alice), self.console(bob)
        row = self.peers(alice_console)[short_id(bob_id)]
        self.assertEqual((row.name, row.state), ("bob", "alive"))
        alice_console.send("/msg bob only for the real bob")
        bob_console.wait_for(rb"\*alice\* only for the real bob\r\n")
        impostor.socket.close()

    def test_table_flood_does_not_cut_joiners_off(self):
        """
        Finding 8.  A raw peer sends alice 10,000 validly signed members
        under fresh keys.  Alice keeps at most its per-link budget of them
        (logging once that the rest were dropped), keeps the link, and a
        joiner, carol, still gets gossip: she learns bob through alice.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        raw = RawPeer(alice.peer_address, name="flooder")
        fakes = [row_of(who, 1, "fake", None) for who in strangers(10_000, start=50_000)]
        for at in range(0, len(fakes), ROWS_PER_FRAME):
            raw.send({"type": "gossip", "rows": fakes[at:at + ROWS_PER_FRAME]})
        # Alice has read the flood when she drops rows over budget (or,
        # without a budget, finds her table full).
        alice.wait_for_log(rb"over its budget of new members|membership table full")
        carol = self.start("carol", "--peer", alice.peer_address)
        carol.wait_for_log(rb"member bob \([0-9a-f]{8}\) joined")
        alice_console = self.console(alice)
        status = alice_console.status()
        self.assertLess(int(status["peers"]), 10_000)
        self.assertNotIn(b"closing link with flooder", alice.output)
        self.assertIn(b"over its budget of new members", alice.output)
        self.assertIsNone(re.search(rb"Traceback", alice.output))

    def test_replayed_dead_rumour_does_not_kill_linked_bob(self):
        """
        Local confirmation.  A raw peer replays bob's own signed row to
        alice as a dead claim (the one kind of claim about bob it can
        make).  Alice, linked to bob and hearing him, keeps him alive and
        passes the claim to bob, who refutes it with a new signed
        incarnation; alice never shows bob dead or suspect.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        raw = RawPeer(alice.peer_address, name="rumour")
        real = row_about(raw, "bob")
        raw.send({"type": "gossip", "rows": [dict(real, state=DEAD)]})
        bob.wait_for_log(rb"refuting rumour from [0-9a-f]{8} that we are dead")
        alice_console = self.console(alice)
        row = self.peers(alice_console)[short_id(real["id"])]
        self.assertEqual((row.name, row.state), ("bob", "alive"))
        self.assertIsNone(
            re.search(rb"member bob \([0-9a-f]{8}\) (seems down|is down)", alice.output)
        )
