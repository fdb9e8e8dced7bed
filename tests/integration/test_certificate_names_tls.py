"""
The hello check on a real TLS link and L{p2pchat.trust.tls.names_member}
agree on wildcard certificates (the decision itself is tested in
C{tests.unit.test_certificate_names}).
"""

import os

from twisted.internet import defer

from p2pchat.trust.binding import check_peer_name
from tests.tls_network import ConnectionTestCase, issue


class HelloNameTests(ConnectionTestCase):
    """
    The hello check on a real TLS link decides as the attestations do.
    """

    @defer.inlineCallbacks
    def test_wildcard_certificate_hello_refused(self):
        """
        A peer with a wildcard certificate of the network cannot claim a
        name under it in its hello; a peer whose certificate lists the name
        exactly can.
        """
        directory = os.path.dirname(self.network["alice"].ca)
        _, _, wildcard = issue(directory, "*.net.example")
        _, _, exact = issue(directory, "dave.net.example")
        server, client = yield self.linked(self.network["alice"], wildcard)
        self.assertEqual(
            check_peer_name(server.transport, "dave.net.example"),
            "certificate is for *.net.example, hello claims 'dave.net.example'",
        )
        self.assertIsNotNone(check_peer_name(server.transport, "*.net.example"))
        server, client = yield self.linked(self.network["alice"], exact)
        self.assertIsNone(check_peer_name(server.transport, "DAVE.net.example"))
