"""
TLS test helpers shared by the unit and integration tests: a CA with
certificates for named nodes (L{make_network}) or with any DNS names
(L{issue}), hello frames (L{hello}), and
L{ConnectionTestCase}, which runs mutual TLS servers and clients on
127.0.0.1 with the real reactor (integration tests only).
"""

import datetime
import os

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.internet import defer
from twisted.internet.interfaces import IHandshakeListener
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase
from zope.interface import implementer

from p2pchat.config import TLSFiles
from p2pchat.trust.ca import CA_CERT_FILE, CA_KEY_FILE, init_ca, issue_node
from p2pchat.trust.tls import wrap_client_endpoint, wrap_server_endpoint


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
