"""
One decision, L{p2pchat.trust.tls.names_member}, of whether a certificate names
a member: the hello check on TLS links and the name attestations agree,
also on wildcard certificates.
"""

import os

from cryptography import x509
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.identity import Identity
from p2pchat.trust.attest import Attestations, attestation_body
from p2pchat.trust.ca import CA_CERT_FILE
from p2pchat.trust.tls import names_member
from tests.tls_network import issue, make_network


class NamesMemberTests(SynchronousTestCase):
    """
    L{names_member} and the attestations that use it.
    """

    def setUp(self):
        self.directory = os.path.abspath(self.mktemp())
        make_network(self.directory)
        with open(os.path.join(self.directory, CA_CERT_FILE), "rb") as f:
            self.attestations = Attestations([x509.load_pem_x509_certificate(f.read())])

    def test_exact_names_any_case(self):
        """
        A name listed in the certificate matches, in any ASCII case.
        """
        _, certificate, _ = issue(self.directory, "dave.net.example", "dave")
        for name in ("dave.net.example", "DAVE.Net.Example", "dave"):
            self.assertTrue(names_member(certificate, name), name)
        for name in ("erin", "dave.net.example.", "ｄave", None):
            self.assertFalse(names_member(certificate, name), name)

    def test_wildcard_names_nobody(self):
        """
        A wildcard certificate matches no name, not even its own pattern.
        """
        _, certificate, _ = issue(self.directory, "*.net.example")
        for name in ("dave.net.example", "*.net.example", "net.example"):
            self.assertFalse(names_member(certificate, name), name)

    def test_attestation_with_wildcard_not_believed(self):
        """
        An attestation by a wildcard certificate is not believed, whatever
        name under the wildcard it claims; one by an exact certificate is.
        """
        node_id = Identity.generate().node_id
        key, certificate, _ = issue(self.directory, "*.net.example")
        for name in ("dave.net.example", "*.net.example"):
            reason = self.attestations.why_not(
                node_id, attestation_body(key, certificate, node_id, name))
            self.assertEqual(reason, f"certificate is for *.net.example, not {name}")
        key, certificate, _ = issue(self.directory, "dave.net.example")
        body = attestation_body(key, certificate, node_id, "Dave.Net.Example")
        self.assertIsNone(self.attestations.why_not(node_id, body))
