"""
Bad and abusive peers against real C{twistd -n p2pchat} processes: a
forged entry and a flood, sent by a raw client that speaks the protocol
(L{p2pchat.testing.rawpeer.RawPeer}).
"""

import select

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.mesh import wire
from p2pchat.testing.rawpeer import RawPeer
from tests.processes import DEADLINE_S, NodeTestMixin


class AbuseTests(NodeTestMixin, SynchronousTestCase):
    """
    One bad peer does not hurt the others.
    """



    def test_forged_entry_rejected_everywhere(self):
        """
        An entry whose signature does not match, sent on an established
        link, closes that link with an error naming the problem, is logged,
        and is stored, shown and relayed nowhere.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        raw = RawPeer(alice.peer_address)
        genuine = create_entry(raw.identity, 1, None, 1, 0, "chat", {"name": "raw", "text": "hi"})
        forged = dict(genuine.to_wire(), body={"name": "raw", "text": "send me money"})
        raw.send(wire.entry_frame(forged))
        frames = raw.frames_until_closed()
        refusal = {"type": "error", "reason": "rejected entry: bad signature"}
        self.assertEqual(frames[-1], refusal)
        alice.wait_for_log(
            rb"closing link with raw \([0-9a-f]{8}\) .*rejected entry: bad signature"
        )
        for node in (alice, bob):
            status = self.console(node).status()
            self.assertEqual(status["messages"], "0")

    def test_flood_does_not_stop_chat(self):
        """
        While one raw peer floods alice with 15,000 valid new entries as
        fast as its socket takes them, bob and carol (linked through alice)
        still chat, and in the end every flooded entry is stored: the flood
        is slowed (to the live rate limit), not dropped.  How fast the chat
        line crosses is measured by C{python -m p2pchat.bench} (scenario
        C{flood_chat}), not asserted here: tests never assert on wall-clock
        speed.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        carol = self.start("carol", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        carol.wait_for_log(rb"link up with alice")
        bob_console, carol_console = self.console(bob), self.console(carol)
        alice_console = self.console(alice)
        raw = RawPeer(alice.peer_address, name="flooder")
        count, prev, lines = 15000, None, []
        for seq in range(1, count + 1):
            entry = create_entry(raw.identity, seq, prev, seq, 0, "chat",
                                 {"name": "flooder", "text": f"flood {seq}"})
            prev = entry.id
            lines.append(wire.encode_frame(wire.entry_frame(entry.to_wire())) + b"\n")
        raw.socket.setblocking(False)
        payload = b"".join(lines)
        sent = 0
        chat_sent = False
        while sent < len(payload):
            # A generous deadline for alice to take more, never a speed bound.
            _, writable, _ = select.select([], [raw.socket], [], DEADLINE_S)
            self.assertTrue(writable, "alice stopped reading the flood")
            try:
                sent += raw.socket.send(payload[sent:sent + 65536])
            except BlockingIOError:
                pass
            if not chat_sent and sent > len(payload) // 4:
                bob_console.send("can you hear me through the flood")
                chat_sent = True
            try:
                raw.socket.recv(65536)
            except BlockingIOError:
                pass
        carol_console.wait_for(rb"<bob> can you hear me through the flood")
        alice_console.wait_status("messages", str(count + 1))
