"""
Attacks on entries against real C{twistd -n p2pchat} processes, sent by a
raw client that speaks the protocol and holds no honest node's key.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.mesh import wire
from p2pchat.testing.rawpeer import RawPeer
from tests.malicious import SocketAttacker
from tests.processes import NodeTestMixin


class EntryEncodingAttackTests(NodeTestMixin, SynchronousTestCase):
    """
    A relay cannot fork an author's feed by re-encoding the author's
    entries (finding 1).
    """

    def test_recased_signature_does_not_fork_feed(self):
        """
        A raw peer sends alice an upper-cased-C{sig} copy of carol's seq 1
        before carol's real one: alice refuses it (closing that link with
        the reason), and carol's real entries 1..n, relayed through bob,
        then reach alice and bob, which end with equal digests.  Before the
        fix alice kept the copy under a second id and refused every later
        entry of carol's (C{prev does not match}), so the digests never met.
        """
        count = 12
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        carol = RawPeer(bob.peer_address, name="carol")
        entries, prev = [], None
        for seq in range(1, count + 1):
            entry = create_entry(carol.identity, seq, prev, seq, 1000 * seq, "chat",
                                 {"name": "carol", "text": f"carol says {seq}"})
            entries.append(entry)
            prev = entry.id
        forged = dict(entries[0].to_wire(), sig=entries[0].sig.upper())
        self.assertNotEqual(forged["sig"], entries[0].sig)

        mallory = RawPeer(alice.peer_address, name="mallory")
        mallory.send(wire.entry_frame(forged))
        frames = mallory.frames_until_closed()
        self.assertEqual(
            frames[-1],
            {"type": "error", "reason": "rejected entry: sig is not 64 bytes of lowercase hex"},
        )
        alice.wait_for_log(rb"closing link with mallory \([0-9a-f]{8}\) .*lowercase hex")

        for entry in entries:
            carol.send(wire.entry_frame(entry.to_wire()))
        alice_console, bob_console = self.console(alice), self.console(bob)
        bob_console.wait_status("messages", str(count))
        alice_status = alice_console.wait_status("messages", str(count))
        bob_status = bob_console.status()
        self.assertEqual(alice_status["digest"], bob_status["digest"])
        alice_console.wait_for(rb"<carol[^>]*> carol says %d\r\n" % count)

    def test_hostile_links_do_not_stop_honest_chat(self):
        """
        One attacker (L{SocketAttacker}) opens several links to alice: one
        sends garbage, one an over-long line, one a re-cased copy of an
        entry, one never reads and asks for everything, and some never say
        anything.  Each bad link is closed with its reason; bob's chat still
        reaches alice, and alice still answers her console.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        attacker = SocketAttacker(alice.peer_address)
        self.addCleanup(attacker.close)
        attacker.idle(3)
        garbage, longline, recased = attacker.links(3)
        stalled = attacker.link("stalled", reading=False)
        stalled.send({"type": "summary", "vv": {}, "final": True})
        attacker.send_raw(garbage, b"\xff\xfe{not json\n")
        attacker.send_raw(longline, b"{" + b"x" * (wire.MAX_LINE_BYTES + 10) + b"\n")
        entry = create_entry(recased.identity, 1, None, 1, 0, "chat",
                             {"name": "mallory", "text": "hi"})
        recased.send(wire.entry_frame(dict(entry.to_wire(), sig=entry.sig.upper())))
        reasons = [peer.frames_until_closed()[-1]["reason"]
                   for peer in (garbage, longline, recased)]
        self.assertEqual(reasons, [
            "bad frame: line is not valid UTF-8",
            f"line longer than {wire.MAX_LINE_BYTES} bytes",
            "rejected entry: sig is not 64 bytes of lowercase hex",
        ])
        alice_console, bob_console = self.console(alice), self.console(bob)
        bob_console.send("still here")
        alice_console.wait_for(rb"<bob> still here\r\n")
        self.assertEqual(alice_console.status()["messages"], "1")
