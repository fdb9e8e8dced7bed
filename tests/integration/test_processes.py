"""
Integration tests: real C{twistd -n p2pchat} processes talking over TCP,
driven through their consoles as a user with telnet would.
"""

import json
import os
import signal
import socket

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import NodeProcess, NodeTestMixin


class NodeProcessTests(NodeTestMixin, SynchronousTestCase):
    """
    Two and three real nodes chatting.
    """



    def test_broadcast_direct_message_and_restart(self):
        """
        Bob joins alice with --peer; a broadcast from alice appears on
        bob's console, a direct message from bob appears on alice's as
        *bob* text, and after alice restarts (SIGTERM exits 0) her history
        still holds both.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        alice_console, bob_console = self.console(alice), self.console(bob)
        alice_console.send("hello from alice")
        bob_console.wait_for(rb"\[\d\d:\d\d:\d\d\] <alice> hello from alice\r\n")
        bob_console.send("/msg alice just for you")
        alice_console.wait_for(rb"\[\d\d:\d\d:\d\d\] \*bob\* just for you\r\n")
        self.assertEqual(alice_console.status()["digest"], bob_console.status()["digest"])
        peers = bob_console.command("/peers", rb"ago\r\n")
        self.assertIn("alice", peers)
        alice_console.close()
        self.assertEqual(alice.stop(), 0)
        alice.start()
        history = self.console(alice).command("/history", rb"just for you\r\n")
        self.assertIn("<alice> hello from alice", history)
        self.assertIn("*bob* just for you", history)

    def test_relay_through_middle_node(self):
        """
        In a chain carol -> bob -> alice, a broadcast from carol reaches
        alice through bob, and all three end with the same digest.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        carol = self.start("carol", "--peer", bob.peer_address)
        carol.wait_for_log(rb"link up with bob")
        bob.wait_for_log(rb"link up with alice")
        alice_console = self.console(alice)
        self.console(carol).send("from the end of the chain")
        alice_console.wait_for(rb"<carol> from the end of the chain")
        # carol may also have linked to alice directly (through gossip), so
        # alice can hold the post while bob still verifies his copy: wait.
        digest = alice_console.status()["digest"]
        for node in (bob, carol):
            self.console(node).wait_status("digest", digest)

    def test_outbound_only_node(self):
        """
        A node started with --listen none opens no peer port, yet chats
        both ways over its outbound link.
        """
        alice = self.start("alice")
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        natted = NodeProcess("natted", data_dir, "--listen", "none", "--console",
                             "tcp:0:interface=127.0.0.1", "--peer", alice.peer_address)
        natted.start()
        self.addCleanup(natted.stop, signal.SIGKILL)
        self.assertEqual(natted.peer_address, "none")
        natted.wait_for_log(rb"link up with alice")
        alice_console, natted_console = self.console(alice), self.console(natted)
        natted_console.send("from behind the NAT")
        alice_console.wait_for(rb"<natted> from behind the NAT")
        alice_console.send("heard you")
        natted_console.wait_for(rb"<alice> heard you")
        self.assertEqual(natted_console.status()["port"], "none")

    def test_acknowledged_messages_survive_kill_9(self):
        """
        Messages a console has seen echoed (committed) are all there after
        the node is killed with SIGKILL and restarted.
        """
        alice = self.start("alice")
        console = self.console(alice)
        console.command("/paste off", rb"pasted or not\r\n")
        for i in range(50):
            console.send(f"durable {i}")
        console.wait_for(rb"<alice> durable 49\r\n")
        alice.stop(signal.SIGKILL)
        alice.start()
        status = self.console(alice).status()
        self.assertEqual(status["messages"], "50")

    def test_sighup_keeps_running(self):
        """
        SIGHUP commits what is queued, says so in the log and leaves the node
        running; SIGTERM then stops it with status 0.
        """
        alice = self.start("alice")
        console = self.console(alice)
        console.send("before the hangup")
        console.wait_for(rb"<alice> before the hangup")
        alice.process.send_signal(signal.SIGHUP)
        alice.wait_for_log(rb"SIGHUP: queued entries committed")
        self.assertEqual(console.status()["messages"], "1")
        self.assertEqual(alice.stop(), 0)

    def test_garbage_from_peer_is_refused(self):
        """
        A connection that sends garbage to the peer port gets an error frame
        and is closed; the node logs it and keeps serving its console.
        """
        alice = self.start("alice")
        host, port = alice.peer_address.rsplit(":", 1)
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            raw.sendall(b"this is not json\n")
            received = b""
            while True:
                data = raw.recv(65536)
                if not data:
                    break
                received += data
        lines = [json.loads(line) for line in received.splitlines()]
        self.assertEqual(lines[0]["type"], "hello")
        refusal = {"type": "error", "reason": "bad frame: line is not valid JSON"}
        self.assertEqual(lines[-1], refusal)
        alice.wait_for_log(rb"closing link with unidentified peer at 127\.0\.0\.1:\d+: bad frame")
        self.assertEqual(self.console(alice).status()["name"], "alice")
