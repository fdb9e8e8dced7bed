"""
Tests for L{p2pchat.trust.attest}: name attestations on a TLS network, and how
a node shows authors' names with them.
"""

import datetime
import io
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.chat import UnknownPeer
from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.trust import ca
from p2pchat.trust.attest import Attestations, attestation_body
from tests.nodes import Network


def load(directory, name):
    """
    @return: the private key and certificate C{p2pchat-ca} issued to C{name}.
    """
    with open(os.path.join(directory, f"{name}.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    with open(os.path.join(directory, f"{name}.pem"), "rb") as f:
        certificate = x509.load_pem_x509_certificate(f.read())
    return key, certificate


class AttestationTests(SynchronousTestCase):
    """
    L{Attestations.why_not} believes exactly the attestations of members.
    """

    def setUp(self):
        quiet = io.StringIO()
        self.network = os.path.abspath(self.mktemp())
        self.other = os.path.abspath(self.mktemp())
        for directory in (self.network, self.other):
            self.assertEqual(ca.main(["init", directory], stdout=quiet, stderr=quiet), 0)
        for name in ("dave", "erin"):
            self.assertEqual(ca.main(["issue", self.network, name], stdout=quiet,
                                     stderr=quiet), 0)
        self.assertEqual(ca.main(["issue", self.other, "dave"], stdout=quiet, stderr=quiet), 0)
        with open(os.path.join(self.network, "ca.pem"), "rb") as f:
            self.authority = x509.load_pem_x509_certificate(f.read())
        self.attestations = Attestations([self.authority])
        self.node_id = Identity.generate().node_id

    def test_member_believed(self):
        """
        A certificate of the network, for the name claimed, whose key signed
        this id, is believed and remembered.
        """
        key, certificate = load(self.network, "dave")
        body = attestation_body(key, certificate, self.node_id, "dave")
        self.assertIsNone(self.attestations.learn(self.node_id, body))
        self.assertEqual(self.attestations.names, {self.node_id: "dave"})

    def test_refusals(self):
        """
        Another CA's certificate, a name the certificate is not for, a proof
        made for another id and an expired certificate are not believed,
        each with a reason.
        """
        key, certificate = load(self.network, "dave")
        other_key, other_certificate = load(self.other, "dave")
        cases = {
            "not from this network's CA": attestation_body(
                other_key, other_certificate, self.node_id, "dave"),
            "certificate is for dave, not erin": attestation_body(
                key, certificate, self.node_id, "erin"),
            "proof is not": attestation_body(
                key, certificate, Identity.generate().node_id, "dave"),
        }
        for fragment, body in cases.items():
            self.assertIn(fragment, self.attestations.why_not(self.node_id, body))
        later = Attestations(
            [self.authority],
            clock=lambda: datetime.datetime(2200, 1, 1, tzinfo=datetime.timezone.utc),
        )
        body = attestation_body(key, certificate, self.node_id, "dave")
        self.assertEqual(later.why_not(self.node_id, body), "certificate is not valid now")
        self.assertEqual(self.attestations.names, {})

    def test_node_shows_certified_names(self):
        """
        On a TLS network a node shows an author under its certified name,
        whatever its entries claim, and an author without one with the
        claimed name and "?"; /msg resolves only certified names.
        """
        key, certificate = load(self.network, "dave")
        net = Network(self)
        bob = net.node("bob", attestations=Attestations([self.authority]))
        dave = Identity.generate()
        cert = create_entry(dave, 1, None, 1, 0, "cert",
                            attestation_body(key, certificate, dave.node_id, "dave"))
        posing = create_entry(dave, 2, cert.id, 2, 0, "chat",
                              {"name": "alice", "text": "it is me, alice"})
        stranger = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                                {"name": "carol", "text": "hi"})
        for entry in (cert, posing, stranger):
            bob.feed.rx_entry(entry.to_wire(), None)
        net.clock.advance(0)
        shown = {m.text: bob.chat.display_name(m.entry) for m in bob.chat.history(10)}
        self.assertEqual(shown, {"it is me, alice": "dave", "hi": "carol?"})
        self.assertEqual(bob.chat.resolve("dave"), dave.node_id)
        self.assertRaises(UnknownPeer, bob.chat.resolve, "alice")
