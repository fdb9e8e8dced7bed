# -*- test-case-name: tests.integration.test_dialer_processes -*-
"""
Integration tests of the one dialer (L{p2pchat.mesh.dialer}): real
C{twistd -n p2pchat} processes, driven through their consoles.  Every wait
is on an event (a log line, a console line, a /status value) with a
generous deadline.
"""

import socket

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import NodeTestMixin

TWIN = rb"already linked to [0-9a-f]{8}|replaced by the link opened by [0-9a-f]{8}"


def free_port() -> str:
    """
    @return: a TCP port on loopback that was free a moment ago.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return str(probe.getsockname()[1])


class DialerProcessTests(NodeTestMixin, SynchronousTestCase):
    """
    Two real nodes: one link between them, whoever dials.
    """

    def test_mutual_peers_end_with_one_link(self):
        """
        Two nodes that list each other as --peer end with exactly one link
        between them, and each stops redialling the other.
        """
        alice_port, bob_port = free_port(), free_port()
        alice = self.start("alice", "--peer", f"127.0.0.1:{bob_port}", port=alice_port)
        bob = self.start("bob", "--peer", f"127.0.0.1:{alice_port}", port=bob_port)
        alice.wait_for_log(rb"link up with bob")
        bob.wait_for_log(rb"link up with alice")
        # A seed stops once its node has links: alice's (bob was not up
        # when she dialled) at least; bob's too if his link was the twin.
        alice.wait_for_log(rb"stopped redialling 127\.0\.0\.1:" + bob_port.encode())
        alice_console, bob_console = self.console(alice), self.console(bob)
        alice_console.wait_status("links", "1")
        bob_console.wait_status("links", "1")
        self.assertEqual(alice_console.status()["links"], "1")

    def test_connect_to_linked_peer_then_disconnect(self):
        """
        /connect to a peer already linked keeps one link: by its address
        it is refused at once, by another spelling of it the second link
        is closed as a twin.  /disconnect on both sides closes the link,
        and nobody dials it again.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        alice_console, bob_console = self.console(alice), self.console(bob)
        alice_console.wait_status("links", "1")
        bob_address = bob.peer_address
        port = bob_address.rsplit(":", 1)[1]
        self.assertIn(
            f"already linked to or dialling {bob_address}",
            alice_console.command(f"/connect {bob_address}", rb"dialling [^\r]*\r\n"),
        )
        self.assertIn(
            f"connecting to localhost:{port}",
            alice_console.command(f"/connect localhost:{port}", rb"connecting to [^\r]*\r\n"),
        )
        twin = b"(" + TWIN + b")"
        alice.wait_for_log(rb"closing link with bob \([0-9a-f]{8}\)[^\n]*: " + twin)
        alice_console.wait_status("links", "1")
        bob_console.wait_status("links", "1")
        said = alice_console.command(f"/disconnect localhost:{port}", rb"(again|nothing to do)\r\n")
        self.assertRegex(said, rf"disconnected from localhost:{port}; it is not dialled again|"
                               rf"not linked to nor dialling localhost:{port}; nothing to do")
        bob_console.command(f"/disconnect {alice.peer_address}", rb"(again|nothing to do)\r\n")
        alice_console.command(f"/disconnect {bob_address}", rb"(again|nothing to do)\r\n")
        alice_console.wait_status("links", "0")
        bob_console.wait_status("links", "0")
        peers = alice_console.command("/peers", rb"ago\r\n")
        self.assertIn("not connected", peers)
