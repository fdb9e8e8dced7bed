"""
One decision, L{p2pchat.trust.tls.names_member}, of whether a certificate names
a member: the hello check on TLS links and the name attestations agree,
also on wildcard certificates.
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.config import TLSFiles
from p2pchat.log.identity import Identity
from p2pchat.trust.attest import Attestations, attestation_body
from p2pchat.trust.binding import check_peer_name
from p2pchat.trust.ca import CA_CERT_FILE, CA_KEY_FILE
from p2pchat.trust.tls import names_member
from tests.integration.test_tls import ConnectionTestCase, make_network


def issue(directory, *dns_names):
    """
    Issue, with the CA in C{directory}, a certificate whose subjectAltName
    lists C{dns_names} (which may be wildcards, which C{p2pchat-ca} never
    issues but another CA might).

    @return: the key, the certificate and the L{TLSFiles}.
    """
    with open(os.path.join(directory, CA_KEY_FILE), "rb") as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    ca_path = os.path.join(directory, CA_CERT_FILE)
    with open(ca_path, "rb") as f:
        authority = x509.load_pem_x509_certificate(f.read())
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_names[0])]))
        .issuer_name(authority.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    stem = os.path.join(directory, dns_names[0].replace("*", "star"))
    with open(stem + ".key", "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM,
                                  serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(stem + ".pem", "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    return key, certificate, TLSFiles(cert=stem + ".pem", key=stem + ".key", ca=ca_path)


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
