"""
Tests for L{p2pchat.trust.tls}: mutual TLS between nodes of one network CA, the
name check against the hello, and the hello's channel binding.

The connection tests run real TLS over loopback sockets on 127.0.0.1 with
trial's reactor: what they prove is what OpenSSL does on the wire.
"""

import os
import shutil
import subprocess

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet import defer, ssl

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
from tests.tls_network import ConnectionTestCase, Probe, ProbeFactory, hello

GREETING = b'{"type":"hello","note":"plain text must never leak"}\n'


class GreetingProbe(Probe):
    """
    A probe that writes L{GREETING} as soon as it is connected, as a
    listening peer sends its hello.
    """

    greeting = GREETING


class MutualTLSTests(ConnectionTestCase):
    """
    Nodes with certificates from one CA link up over TLS 1.3; anyone else
    is refused during the handshake.
    """

    @defer.inlineCallbacks
    def test_same_ca_links(self):
        """
        Two nodes of one CA complete the handshake over TLS 1.3, each sees
        the other's certificate, and application data flows.
        """
        server, client = yield self.linked(self.network["alice"], self.network["bob"])
        for probe in (server, client):
            connection = probe.transport.getHandle()
            self.assertEqual(connection.get_protocol_version_name(), "TLSv1.3")
        client.transport.write(b"ping\n")
        while server.received != b"ping\n":
            yield deferLater(self.reactor, 0.01)

    @defer.inlineCallbacks
    def test_peer_name_checked_against_hello(self):
        """
        L{check_peer_name} accepts the name in the peer's certificate (in
        any case) and refuses any other name, saying which name the
        certificate is for.
        """
        server, client = yield self.linked(self.network["alice"], self.network["bob"])
        self.assertIsNone(check_peer_name(server.transport, "bob"))
        self.assertIsNone(check_peer_name(server.transport, "BOB"))
        self.assertIsNone(check_peer_name(client.transport, "alice"))
        self.assertEqual(
            check_peer_name(server.transport, "carol"),
            "certificate is for bob, hello claims 'carol'",
        )
        self.assertIn("certificate is for alice", check_peer_name(client.transport, "bob"))
        self.assertIn("not a DNS name", check_peer_name(client.transport, "al ice"))

    @defer.inlineCallbacks
    def test_ssl_listen_string(self):
        """
        An C{ssl:PORT} listen string gives the same mutual TLS, with the
        certificate from the TLS files.
        """
        server, client = yield self.linked(
            self.network["alice"], self.network["bob"], "ssl:0:interface=127.0.0.1"
        )
        self.assertIsNone(check_peer_name(client.transport, "alice"))
        self.assertIsNone(check_peer_name(server.transport, "bob"))

    @defer.inlineCallbacks
    def test_client_from_other_ca_refused(self):
        """
        A client whose certificate is from another CA is refused by the
        server during the handshake (even though the client trusts the
        server): the server's protocol never completes a handshake, no data
        passes, and the server's reason is a failed verification.
        """
        port, factory = yield self.listen(self.network["alice"], protocol=GreetingProbe)
        mallory = self.outsiders["mallory"]
        options = ssl.CertificateOptions(
            privateKey=load_key(mallory.key),
            certificate=load_certificate(mallory.cert),
            verify=True,
            caCerts=[crypto.X509.from_cryptography(load_certificate(self.network["alice"].ca))],
        )
        client = yield ssl_client(self.reactor, port, options).connect(ProbeFactory())
        self.addCleanup(self.close, client)
        server = yield factory.built
        yield self.refused(server, client)
        server.reason.trap(SSL.Error)
        self.assertIn("certificate verify failed", str(server.reason.value))

    @defer.inlineCallbacks
    def test_server_from_other_ca_refused(self):
        """
        A server whose certificate is from another CA is refused by the
        connecting node: neither side completes the handshake.
        """
        port, factory = yield self.listen(self.outsiders["mallory"], protocol=GreetingProbe)
        client = yield self.connect(port, self.network["alice"])
        server = yield factory.built
        yield self.refused(server, client)
        self.assertFalse(client.handshake.called)
        client.reason.trap(SSL.Error)
        self.assertIn("certificate verify failed", str(client.reason.value))

    @defer.inlineCallbacks
    def test_client_without_certificate_refused(self):
        """
        A TLS client that presents no certificate at all is refused: TLS
        is mutual.
        """
        port, factory = yield self.listen(self.network["alice"], protocol=GreetingProbe)
        anonymous = ssl.CertificateOptions(verify=False)
        endpoint = ssl_client(self.reactor, port, anonymous)
        client = yield endpoint.connect(ProbeFactory())
        self.addCleanup(self.close, client)
        server = yield factory.built
        yield self.refused(server, client)

    @defer.inlineCallbacks
    def test_plain_text_client_gets_no_plain_text(self):
        """
        A plain-text client on a TLS port is dropped, and never receives the
        hello the listening side wrote (or any plain text): at most a TLS
        alert record.
        """
        from twisted.internet.endpoints import TCP4ClientEndpoint

        port, factory = yield self.listen(self.network["alice"], protocol=GreetingProbe)
        client = yield TCP4ClientEndpoint(self.reactor, "127.0.0.1", port).connect(
            ProbeFactory()
        )
        self.addCleanup(self.close, client)
        server = yield factory.built
        client.transport.write(b'{"type":"hello","version":1}\n')
        yield client.lost
        yield server.lost
        self.assertNotIn(b"plain text", client.received)
        self.assertNotIn(b"{", client.received)
        if client.received:
            self.assertEqual(client.received[:1], b"\x15")  # TLS alert record
        self.assertFalse(server.handshake.called)
        self.assertEqual(server.received, b"")


class BindingTests(ConnectionTestCase):
    """
    The hello's C{bind} signature ties the claimed id to this TLS session.
    """

    @defer.inlineCallbacks
    def test_both_ends_derive_same_material(self):
        """
        Both ends of a session get the same exporter value, of
        C{EXPORTER_LENGTH} bytes.
        """
        server, client = yield self.linked(self.network["alice"], self.network["bob"])
        material = binding_material(server.transport)
        self.assertEqual(len(material), EXPORTER_LENGTH)
        self.assertEqual(binding_material(client.transport), material)

    @defer.inlineCallbacks
    def test_sign_and_check_hello(self):
        """
        A hello with the right name and a bind signature by its id's key
        over this session passes L{check_hello}; a wrong name, a missing or
        malformed bind, or an id that did not sign are refused.
        """
        server, client = yield self.linked(self.network["alice"], self.network["bob"])
        bob, eve = Identity.generate(), Identity.generate()
        bind = sign_binding(bob, binding_material(client.transport))
        self.assertTrue(verify_binding(bob.node_id, binding_material(server.transport), bind))
        self.assertIsNone(check_hello(server.transport, hello(bob, "bob", bind)))
        self.assertIn("claims 'carol'", check_hello(server.transport, hello(bob, "carol", bind)))
        self.assertIn("no bind", check_hello(server.transport, hello(bob, "bob")))
        self.assertIn("does not match", check_hello(server.transport, hello(eve, "bob", bind)))
        for bad in ["", "zz" * 64, bind[:-2], 12]:
            self.assertIn(
                "does not match", check_hello(server.transport, hello(bob, "bob", bad))
            )

    @defer.inlineCallbacks
    def test_signature_from_another_session_fails(self):
        """
        A bind signature made for one session does not verify for another
        session, even between the same two nodes with the same keys: a
        member cannot replay another link's proof.
        """
        server1, client1 = yield self.linked(self.network["alice"], self.network["bob"])
        server2, client2 = yield self.linked(self.network["alice"], self.network["bob"])
        bob = Identity.generate()
        bind1 = sign_binding(bob, binding_material(client1.transport))
        material2 = binding_material(server2.transport)
        self.assertNotEqual(binding_material(server1.transport), material2)
        self.assertFalse(verify_binding(bob.node_id, material2, bind1))
        self.assertIn("does not match", check_hello(server2.transport, hello(bob, "bob", bind1)))
        self.assertIsNone(check_hello(server1.transport, hello(bob, "bob", bind1)))


OPENSSL = shutil.which("openssl")

CA_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
x509_extensions = v3_ca
[dn]
CN = openssl test CA
[v3_ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""

NODE_EXTENSIONS = """\
subjectAltName = DNS:{name}
extendedKeyUsage = {usage}
basicConstraints = CA:FALSE
"""


class OpenSSLCertificateTests(ConnectionTestCase):
    """
    Certificates made with the stock C{openssl} command work as node
    certificates.
    """

    if OPENSSL is None:
        skip = "no openssl command"

    def openssl(self, *args):
        """
        Run C{openssl} with C{args} in the test directory.
        """
        subprocess.run(
            [OPENSSL, *args], cwd=self.directory, check=True, capture_output=True
        )

    def keygen(self, path, kind):
        """
        Make an EC P-256 or RSA 2048 key at C{path}.
        """
        if kind == "ec":
            self.openssl("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", path)
        else:
            self.openssl("genrsa", "-out", path, "2048")

    def make_ca(self, kind):
        """
        Make a CA with C{openssl req -x509}.
        """
        self.directory = self.mktemp()
        os.makedirs(self.directory)
        with open(os.path.join(self.directory, "ca.cnf"), "w") as f:
            f.write(CA_CONFIG)
        self.keygen("ca.key", kind)
        self.openssl(
            "req", "-x509", "-new", "-key", "ca.key", "-config", "ca.cnf",
            "-days", "30", "-sha256", "-out", "ca.pem",
        )

    def make_node(self, name, kind, usage="serverAuth,clientAuth"):
        """
        Make a node key and certificate for C{name} signed by the CA with
        C{openssl x509 -req}.

        @return: its L{TLSFiles}.
        """
        with open(os.path.join(self.directory, name + ".ext"), "w") as f:
            f.write(NODE_EXTENSIONS.format(name=name, usage=usage))
        self.keygen(name + ".key", kind)
        self.openssl(
            "req", "-new", "-key", name + ".key", "-subj", "/CN=" + name,
            "-config", "ca.cnf", "-out", name + ".csr",
        )
        self.openssl(
            "x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-set_serial", str(int.from_bytes(os.urandom(8), "big")), "-days", "30",
            "-sha256", "-extfile", name + ".ext", "-out", name + ".pem",
        )
        path = os.path.join(self.directory, name)
        return TLSFiles(
            cert=path + ".pem", key=path + ".key", ca=os.path.join(self.directory, "ca.pem")
        )

    @defer.inlineCallbacks
    def check_link(self, kind):
        """
        Link two nodes whose CA and certificates were made by C{openssl}
        with C{kind} keys, and check names and binding.
        """
        self.make_ca(kind)
        alice, bob = self.make_node("alice", kind), self.make_node("bob", kind)
        server, client = yield self.linked(alice, bob)
        self.assertIsNone(check_peer_name(server.transport, "bob"))
        self.assertIsNone(check_peer_name(client.transport, "alice"))
        self.assertIsNotNone(check_peer_name(server.transport, "alice"))
        identity = Identity.generate()
        bind = sign_binding(identity, binding_material(client.transport))
        self.assertIsNone(check_hello(server.transport, hello(identity, "bob", bind)))

    def test_ec(self):
        """
        An EC CA and EC node certificates with C{subjectAltName=DNS:NAME}
        and serverAuth+clientAuth work.
        """
        return self.check_link("ec")

    def test_rsa(self):
        """
        An RSA CA and RSA node certificates work too.
        """
        return self.check_link("rsa")

    @defer.inlineCallbacks
    def test_client_without_client_auth_refused(self):
        """
        A node certificate without the clientAuth extended key usage is
        refused when it is used to connect.
        """
        self.make_ca("ec")
        alice = self.make_node("alice", "ec")
        server_only = self.make_node("bob", "ec", usage="serverAuth")
        port, factory = yield self.listen(alice, protocol=GreetingProbe)
        client = yield self.connect(port, server_only)
        server = yield factory.built
        yield self.refused(server, client)
        server.reason.trap(SSL.Error)
        self.assertIn("certificate verify failed", str(server.reason.value))


def ssl_client(reactor, port, options):
    """
    @return: a TLS client endpoint to 127.0.0.1:C{port} with C{options}.
    """
    from twisted.internet.endpoints import TCP4ClientEndpoint, wrapClientTLS

    return wrapClientTLS(options, TCP4ClientEndpoint(reactor, "127.0.0.1", port))


def deferLater(reactor, seconds):
    """
    @return: a L{Deferred} that fires after C{seconds}.
    """
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


def load_certificate(path):
    """
    @return: the first certificate in the PEM file at C{path}.
    """
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def load_key(path):
    """
    @return: the private key in the PEM file at C{path}.
    """
    with open(path, "rb") as f:
        return serialization.load_pem_private_key(f.read(), password=None)
