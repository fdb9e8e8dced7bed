"""
Tests for L{p2pchat.trust.tls} that need no connection: the checks on a plain
transport, binding signatures, and refused TLS files (the connection tests
are in C{tests.integration.test_tls}).
"""

import os

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.config import TLSFiles
from p2pchat.log.identity import Identity
from p2pchat.trust.binding import (
    EXPORTER_LENGTH,
    binding_material,
    check_hello,
    check_peer_name,
    sign_binding,
    verify_binding,
)
from p2pchat.trust.tls import PeerTLS, TLSConfigError, wrap_server_endpoint
from tests.tls_network import hello, make_network


class PlainTransportTests(SynchronousTestCase):
    """
    On a plain TCP transport there is no certificate and no binding.
    """

    def test_plain(self):
        """
        L{binding_material} gives L{None},
        L{check_peer_name} says there is no certificate, and L{check_hello}
        checks nothing.
        """
        transport = StringTransport()
        identity = Identity.generate()
        self.assertIsNone(binding_material(transport))
        self.assertIn("no certificate", check_peer_name(transport, "bob"))
        self.assertIsNone(check_hello(transport, hello(identity, "bob")))

    def test_sign_verify(self):
        """
        L{verify_binding} accepts what L{sign_binding} made for the same
        material and id, and nothing else.
        """
        identity, other = Identity.generate(), Identity.generate()
        material = os.urandom(EXPORTER_LENGTH)
        signature = sign_binding(identity, material)
        self.assertTrue(verify_binding(identity.node_id, material, signature))
        self.assertFalse(verify_binding(other.node_id, material, signature))
        self.assertFalse(verify_binding(identity.node_id, os.urandom(EXPORTER_LENGTH), signature))
        self.assertFalse(verify_binding("not an id", material, signature))
        self.assertFalse(verify_binding(identity.node_id, material, signature.upper() + "x"))
        # The signature covers the context string, not the bare material.
        self.assertFalse(verify_binding(identity.node_id, material, identity.sign(material).hex()))


class ConfigErrorTests(SynchronousTestCase):
    """
    Unusable TLS files fail at load time with a one-line reason.
    """

    def setUp(self):
        base = self.mktemp()
        self.network = make_network(os.path.join(base, "net"), "alice", "bob")
        self.outsiders = make_network(os.path.join(base, "other"), "mallory")

    def assertRefused(self, files, fragment):
        """
        Assert that loading C{files} raises L{TLSConfigError} containing
        C{fragment}.
        """
        error = self.assertRaises(TLSConfigError, PeerTLS.load, files)
        self.assertIn(fragment, str(error))

    def test_errors(self):
        """
        A key that does not match the certificate, a certificate without a
        DNS name, a certificate from another CA, a missing file or a file
        without certificates are refused, each with its reason.
        """
        alice, bob, mallory = self.network["alice"], self.network["bob"], self.outsiders["mallory"]
        self.assertRefused(TLSFiles(alice.cert, bob.key, alice.ca), "does not match")
        self.assertRefused(TLSFiles(alice.ca, alice.key, alice.ca), "does not match")
        self.assertRefused(TLSFiles(mallory.cert, mallory.key, alice.ca), "does not chain")
        self.assertRefused(TLSFiles(alice.cert, alice.key, alice.ca + ".missing"), "cannot read")
        self.assertRefused(TLSFiles(alice.cert, alice.key, alice.key), "no PEM certificate")
        self.assertIsInstance(PeerTLS.load(alice), PeerTLS)

    def test_ssl_string_with_other_certificate(self):
        """
        An C{ssl:} listen string naming a certificate other than the TLS
        files is refused; one repeating them is accepted.
        """
        from twisted.internet.testing import MemoryReactor

        alice, bob = self.network["alice"], self.network["bob"]
        reactor = MemoryReactor()
        error = self.assertRaises(
            TLSConfigError, wrap_server_endpoint, reactor, f"ssl:0:privateKey={bob.key}", alice
        )
        self.assertIn("conflicts with --tls-cert", str(error))
        wrap_server_endpoint(
            reactor, f"ssl:0:privateKey={alice.key}:certKey={alice.cert}", alice
        )
