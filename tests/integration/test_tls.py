"""
Tests for L{p2pchat.trust.tls} and L{p2pchat.trust.binding}: mutual TLS
between nodes of one network CA, the name check against the hello, and the
hello's channel binding.

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
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

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
from p2pchat.trust.ca import init_ca, issue_node
from p2pchat.trust.tls import (
    PeerTLS,
    TLSConfigError,
    wrap_client_endpoint,
    wrap_server_endpoint,
)

GREETING = b'{"type":"hello","note":"plain text must never leak"}\n'


@implementer(IHandshakeListener)
class Probe(Protocol):
    """
    A protocol that records what happens on a connection.

    @ivar handshake: fires with this probe when the TLS handshake completes.
    @ivar lost: fires with L{None} when the connection is lost.
    @ivar reason: why the connection was lost, once it was.
    @ivar received: the application bytes received.
    """

    greeting = None

    def __init__(self):
        self.handshake = defer.Deferred()
        self.lost = defer.Deferred()
        self.received = b""
        self.reason = None

    def connectionMade(self):
        if self.greeting is not None:
            self.transport.write(self.greeting)

    def handshakeCompleted(self):
        self.handshake.callback(self)

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.reason = reason
        self.lost.callback(None)


class GreetingProbe(Probe):
    """
    A probe that writes L{GREETING} as soon as it is connected, as a
    listening peer sends its hello.
    """

    greeting = GREETING


class ProbeFactory(Factory):
    """
    Builds probes and fires C{built} with the first one.
    """

    def __init__(self, protocol=Probe):
        self.protocol = protocol
        self.built = defer.Deferred()

    def buildProtocol(self, addr):
        probe = Factory.buildProtocol(self, addr)
        if not self.built.called:
            self.built.callback(probe)
        return probe


def make_network(directory, *names):
    """
    Make a CA in C{directory} and a certificate for each of C{names}.

    @return: a dict from name to L{TLSFiles}.
    """
    ca_path, _ = init_ca(directory)
    network = {}
    for name in names:
        cert, key = issue_node(directory, name)
        network[name] = TLSFiles(cert=cert, key=key, ca=ca_path)
    return network


def hello(identity, name, bind=None):
    """
    @return: a hello frame as L{p2pchat.mesh.wire.parse_frame} returns it.
    """
    frame = {"type": "hello", "version": 1, "id": identity.node_id, "name": name, "addr": None}
    if bind is not None:
        frame["bind"] = bind
    return frame


class ConnectionTestCase(TestCase):
    """
    Helpers to run a TLS server and clients on 127.0.0.1.
    """

    timeout = 30

    def setUp(self):
        from twisted.internet import reactor

        self.reactor = reactor
        base = self.mktemp()
        self.network = make_network(os.path.join(base, "net"), "alice", "bob", "carol")
        self.outsiders = make_network(os.path.join(base, "other"), "mallory")

    @defer.inlineCallbacks
    def listen(self, files, description="tcp:0:interface=127.0.0.1", protocol=Probe):
        """
        Listen with mutual TLS using C{files}.

        @return: a L{Deferred} firing with the port number and the factory.
        """
        factory = ProbeFactory(protocol)
        endpoint = wrap_server_endpoint(self.reactor, description, files)
        port = yield endpoint.listen(factory)
        self.addCleanup(port.stopListening)
        return port.getHost().port, factory

    @defer.inlineCallbacks
    def connect(self, port, files):
        """
        Connect with mutual TLS using C{files}.

        @return: a L{Deferred} firing with the client probe once TCP is up.
        """
        endpoint = wrap_client_endpoint(self.reactor, "127.0.0.1", port, files)
        client = yield endpoint.connect(ProbeFactory())
        self.addCleanup(self.close, client)
        return client

    def close(self, probe):
        """
        Close C{probe}'s connection if it is open.

        @return: a L{Deferred} that fires when it is closed.
        """
        if not probe.lost.called:
            probe.transport.abortConnection()
        return probe.lost

    @defer.inlineCallbacks
    def linked(self, server_files, client_files, description="tcp:0:interface=127.0.0.1"):
        """
        Connect a client to a server and wait for both handshakes.

        @return: a L{Deferred} firing with the server and client probes.
        """
        port, factory = yield self.listen(server_files, description)
        client = yield self.connect(port, client_files)
        server = yield factory.built
        self.addCleanup(self.close, server)
        yield client.handshake
        yield server.handshake
        return server, client

    @defer.inlineCallbacks
    def refused(self, server, client):
        """
        Wait until both ends of a refused connection are closed, and check
        that the server never finished a handshake nor got a byte.
        """
        yield client.lost
        yield server.lost
        self.assertFalse(server.handshake.called)
        self.assertEqual(server.received, b"")
        self.assertEqual(client.received, b"")


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
