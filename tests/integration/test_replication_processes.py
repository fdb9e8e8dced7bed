"""
Replication between real C{twistd -n p2pchat} processes: catch-up after an
absence, a crash in the middle of a burst, and direct messages to someone
who was offline.
"""

import re
import signal

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import NodeTestMixin


class ReplicationProcessTests(NodeTestMixin, SynchronousTestCase):
    """
    Nodes that come and go still end with the same log.
    """



    def test_offline_node_catches_up_500(self):
        """
        Bob stops; alice posts 500 messages; bob restarts on the same data
        dir and port, and ends with alice's exact log.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        bob_port = bob.peer_address.rsplit(":", 1)[1]
        self.assertEqual(bob.stop(), 0)
        alice_console = self.console(alice)
        alice_console.command("/paste off", rb"pasted or not\r\n")
        for i in range(500):
            alice_console.send(f"while bob was away {i}")
        alice_console.wait_for(rb"<alice> while bob was away 499\r\n")
        bob = self.start("bob", "--peer", alice.peer_address,
                         data_dir=bob.data_dir, port=bob_port)
        bob_console = self.console(bob)
        # A catch-up this size is one summary line on a console, not 500
        # lines (and may be over before the console connects): ask.
        bob_console.wait_status("messages", "500")
        bob_console.wait_history("<alice> while bob was away 499")
        self.assertEqual(bob_console.status()["digest"], alice_console.status()["digest"])
        self.assertEqual(bob_console.status()["messages"], "500")

    def test_kill_9_during_burst_loses_nothing_acknowledged(self):
        """
        Bob is killed with SIGKILL while alice floods him.  Restarted alone,
        he still holds every entry his console had shown (acknowledged);
        linked again, he converges with alice.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        bob_console, alice_console = self.console(bob), self.console(alice)
        alice_console.command("/paste off", rb"pasted or not\r\n")
        alice_console.socket.sendall(b"".join(b"burst %d\r\n" % i for i in range(2000)))
        bob_console.wait_for(rb"<alice> burst 300\r\n")
        bob.stop(signal.SIGKILL)
        acknowledged = re.findall(rb"<alice> (burst \d+)\r\n", bob_console.received)
        self.assertGreaterEqual(len(acknowledged), 301)
        alice_console.wait_for(rb"<alice> burst 1999\r\n")
        bob = self.start("bob", data_dir=bob.data_dir)
        bob_console = self.console(bob)
        held = bob_console.command("/history 1000", rb"\r\n(?!\[)")
        held_texts = set(re.findall(r"<alice> (burst \d+)\r\n", held))
        missing = [t for t in acknowledged if t.decode() not in held_texts]
        self.assertEqual(missing, [])
        bob_console.command(f"/connect {alice.peer_address}", rb"connecting to")
        alice_digest = alice_console.status()["digest"]
        bob_console.wait_status("digest", alice_digest)
        self.assertEqual(bob_console.status()["messages"], "2000")

    def test_direct_message_reaches_offline_node_after_sender_left(self):
        """
        Carol sends alice a direct message while alice is offline, then
        carol stops too; when alice comes back she gets it through bob.
        """
        bob = self.start("bob")
        alice = self.start("alice", "--peer", bob.peer_address)
        carol = self.start("carol", "--peer", bob.peer_address)
        carol.wait_for_log(rb"link up with bob")
        alice.wait_for_log(rb"link up with bob")
        alice_id = self.console(alice).status()["id"]
        self.assertEqual(alice.stop(), 0)
        carol_console = self.console(carol)
        carol_console.send(f"/msg {alice_id} meet at noon")
        carol_console.wait_for(rb"\*carol\* \(to ")
        bob_console = self.console(bob)
        bob_console.wait_status("messages", "1")
        carol_console.close()
        self.assertEqual(carol.stop(), 0)
        alice.start()
        alice_console = self.console(alice)
        alice_console.wait_for(rb"\*carol\* meet at noon\r\n")
        self.assertNotIn(b"meet at noon", bob_console.received)
