"""
Closed networks with mutual TLS, with real C{twistd -n p2pchat} processes
and certificates from C{p2pchat-ca}.
"""

import os
import signal

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import DEADLINE_S, NodeProcess, NodeTestMixin, make_ca, tls_args


class ClosedNetworkTests(NodeTestMixin, SynchronousTestCase):
    """
    Only members with a certificate from the network's CA, for the name
    they claim, get in.
    """

    def setUp(self):
        self.network = make_ca(self, "alice", "bob", "carol", "dave")
        self.outsiders = make_ca(self, "mallory")

    def start_member(self, name, directory, cert_name=None, *args):
        """
        Start a node with the certificate C{directory} issued to
        C{cert_name} (default: C{name}) and that directory's CA.
        """
        return self.start(name, *tls_args(directory, cert_name or name), *args)

    def test_members_chat_outsiders_never_get_in(self):
        """
        Three nodes with certificates from one CA chat over mutual TLS.  A
        node whose certificate comes from another CA, and one whose hello
        claims a name its certificate is not for, are refused with a log
        line saying why (the second does not even start); neither is ever
        listed, and their posts are never shown.
        """
        alice = self.start_member("alice", self.network)
        bob = self.start_member("bob", self.network, None, "--peer", alice.peer_address)
        carol = self.start_member("carol", self.network, None, "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        carol.wait_for_log(rb"link up with alice")
        alice_console, bob_console = self.console(alice), self.console(bob)
        carol_console = self.console(carol)
        carol_console.send("members only")
        # A line can arrive before its author's certificate entry does; it
        # is then shown with the name it claims and a "?".  Once the
        # certificate is in, the author's name is the certified one.
        alice_console.wait_for(rb"<carol\??> members only")
        bob_console.wait_for(rb"<carol\??> members only")
        for console in (alice_console, bob_console):
            console.wait_history("<carol> members only")

        mark = len(alice.output)
        mallory = self.start_member("mallory", self.outsiders, None, "--peer", alice.peer_address)
        refused = rb"refused TLS link with unidentified peer at [^:]+:\d+: .*(ca|certificate)"
        alice.wait_for_log(refused, mark)
        # A hello claiming a name its certificate is not for is refused by
        # every peer (tests.integration.test_tls); the node itself now
        # refuses to start so, with one line naming both.
        impostor = NodeProcess(
            "bob2", os.path.abspath(self.mktemp()), "--port", "0", "--console", "none",
            *tls_args(self.network, "dave"), "--peer", alice.peer_address,
        )
        self.addCleanup(impostor.stop, signal.SIGKILL)
        impostor.spawn().wait_for_log(
            rb"cannot start: --name bob2 is not a name in the TLS certificate \S+dave\.pem "
            rb"\(it names dave\)"
        )
        self.assertEqual(impostor.process.wait(DEADLINE_S), 1)
        self.console(mallory).send("let me in")
        bob_console.send("still here")
        alice_console.wait_for(rb"<bob> still here")
        peers = alice_console.command("/peers", rb"(ago|peers)\r\n(?![a-z])")
        self.assertNotIn("mallory", peers)
        self.assertNotIn("bob2", peers)
        self.assertNotIn(b"let me in", alice_console.received)
        self.assertNotIn(b"let me in", bob_console.received)
        self.assertEqual(alice_console.status()["digest"], bob_console.status()["digest"])

    def test_plain_and_tls_nodes_say_why_they_cannot_link(self):
        """
        A plain node and a TLS node never link, and each side's log says
        that one side speaks TLS, whichever dials: not only that no hello
        came.  When neither side sends anything, the side whose handshake
        deadline comes first explains the silence, so each pair here has one
        short and one long deadline (never a race between two equal ones).
        """
        short, long = ("--handshake-timeout", "2"), ("--handshake-timeout", "30")
        alice = self.start_member("alice", self.network, None, *short)
        plain = self.start("plain", "--peer", alice.peer_address, *long)
        alice.wait_for_log(rb"the peer never started TLS: a node without --tls-\* dialling in")
        carol = self.start_member("carol", self.network, None, *long)
        hasty = self.start("hasty", "--peer", carol.peer_address, *short)
        hasty.wait_for_log(rb"the peer sent nothing: a TLS node waits for the dialler's TLS")
        mark = len(plain.output)
        bob = self.start_member("bob", self.network, None, "--peer", plain.peer_address, *short)
        plain.wait_for_log(rb"the peer speaks TLS and this node does not", mark)
        bob.wait_for_log(rb"refused TLS link with .*: the peer does not speak TLS")
