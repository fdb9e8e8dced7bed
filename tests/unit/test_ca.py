"""
Tests for L{p2pchat.trust.ca}, the C{p2pchat-ca} command.
"""

import io
import os
import stat

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.trust.ca import is_dns_safe_name, main


def run(*argv):
    """
    Run C{p2pchat-ca} with C{argv}.

    @return: the exit status, standard output and standard error.
    """
    out, err = io.StringIO(), io.StringIO()
    status = main(list(argv), stdout=out, stderr=err)
    return status, out.getvalue(), err.getvalue()


def load_cert(path):
    """
    @return: the certificate in the PEM file at C{path}.
    """
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def mode(path):
    """
    @return: the permission bits of C{path}.
    """
    return stat.S_IMODE(os.stat(path).st_mode)


class InitTests(SynchronousTestCase):
    """
    C{p2pchat-ca init DIR} makes a network CA.
    """

    def setUp(self):
        self.directory = os.path.join(self.mktemp(), "ca")

    def test_creates_ca(self):
        """
        C{init} creates the directory, a self-signed EC P-256 CA certificate
        (CA:TRUE, keyCertSign, about 10 years) and its key with mode 0600,
        and exits 0.
        """
        status, out, err = run("init", self.directory)
        self.assertEqual((status, err), (0, ""))
        self.assertIn("ca.pem", out)
        cert = load_cert(os.path.join(self.directory, "ca.pem"))
        self.assertEqual(mode(os.path.join(self.directory, "ca.key")), 0o600)
        self.assertIsInstance(cert.public_key(), ec.EllipticCurvePublicKey)
        self.assertEqual(cert.public_key().curve.name, "secp256r1")
        self.assertEqual(cert.issuer, cert.subject)
        cert.verify_directly_issued_by(cert)
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        self.assertTrue(constraints.critical)
        self.assertTrue(constraints.value.ca)
        self.assertTrue(cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign)
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        self.assertGreaterEqual(lifetime.days, 3650)

    def test_refuses_to_overwrite(self):
        """
        A second C{init} on the same directory fails with exit status 1 and
        an error naming the existing file, and leaves the CA unchanged.
        """
        run("init", self.directory)
        with open(os.path.join(self.directory, "ca.pem"), "rb") as f:
            before = f.read()
        status, out, err = run("init", self.directory)
        self.assertEqual(status, 1)
        self.assertIn("already exists", err)
        with open(os.path.join(self.directory, "ca.pem"), "rb") as f:
            self.assertEqual(f.read(), before)

    def test_usage_error(self):
        """
        No command, an unknown command or a missing argument is a usage
        error: exit status 2 and a message on standard error.
        """
        for argv in [(), ("frobnicate",), ("init",), ("issue", self.directory)]:
            status, out, err = run(*argv)
            self.assertEqual(status, 2, argv)
            self.assertIn("p2pchat-ca: error:", err)

    def test_help(self):
        """
        C{--help} prints the usage to standard output and exits 0.
        """
        status, out, err = run("--help")
        self.assertEqual(status, 0)
        self.assertIn("issue", out)


class IssueTests(SynchronousTestCase):
    """
    C{p2pchat-ca issue DIR NAME} makes a node certificate signed by the CA.
    """

    def setUp(self):
        self.directory = self.mktemp()
        self.assertEqual(run("init", self.directory)[0], 0)
        self.ca = load_cert(os.path.join(self.directory, "ca.pem"))

    def test_issue(self):
        """
        C{issue} writes NAME.pem and NAME.key (mode 0600); the certificate
        is for DNS:NAME, allows server and client auth, is no CA, belongs
        to the key, and verifies up to the CA as a TLS server and client
        certificate for that name.
        """
        status, out, err = run("issue", self.directory, "alice")
        self.assertEqual((status, err), (0, ""))
        cert = load_cert(os.path.join(self.directory, "alice.pem"))
        key_path = os.path.join(self.directory, "alice.key")
        self.assertEqual(mode(key_path), 0o600)
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
        self.assertEqual(key.public_key(), cert.public_key())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertEqual(san.value.get_values_for_type(x509.DNSName), ["alice"])
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        self.assertEqual(
            set(usages), {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
        )
        self.assertFalse(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
        lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
        self.assertGreaterEqual(lifetime.days, 730)
        self.assertLess(lifetime.days, 740)
        policy = PolicyBuilder().store(Store([self.ca]))
        chain = policy.build_server_verifier(x509.DNSName("alice")).verify(cert, [])
        self.assertEqual(chain[-1], self.ca)
        policy.build_client_verifier().verify(cert, [])

    def test_dotted_name(self):
        """
        A dotted DNS name such as C{node-2.example} is accepted.
        """
        self.assertEqual(run("issue", self.directory, "node-2.example")[0], 0)
        cert = load_cert(os.path.join(self.directory, "node-2.example.pem"))
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertEqual(san.value.get_values_for_type(x509.DNSName), ["node-2.example"])

    def test_refuses_to_overwrite(self):
        """
        Issuing the same name twice fails with exit status 1 and keeps the
        first key.
        """
        run("issue", self.directory, "alice")
        key_path = os.path.join(self.directory, "alice.key")
        with open(key_path, "rb") as f:
            before = f.read()
        status, out, err = run("issue", self.directory, "alice")
        self.assertEqual(status, 1)
        self.assertIn("already exists", err)
        with open(key_path, "rb") as f:
            self.assertEqual(f.read(), before)

    def test_bad_names(self):
        """
        Names that are not both p2pchat names and DNS names, or that would
        collide with the CA's files, are refused with exit status 1, and no
        file is written.
        """
        before = sorted(os.listdir(self.directory))
        for name in ["bad_name", "-lead", "trail-", "a..b", "..", "x" * 33, "caf\u00e9",
                     "white space", "1.2.3.4", "CA", "a/b", ""]:
            status, out, err = run("issue", self.directory, "--", name)
            self.assertEqual(status, 1, name)
            self.assertIn("p2pchat-ca: error:", err)
        self.assertEqual(sorted(os.listdir(self.directory)), before)

    def test_without_ca(self):
        """
        C{issue} in a directory without a CA fails with exit status 1 and
        says to run C{init}.
        """
        status, out, err = run("issue", self.mktemp(), "alice")
        self.assertEqual(status, 1)
        self.assertIn("p2pchat-ca init", err)


class NameTests(SynchronousTestCase):
    """
    L{is_dns_safe_name} accepts exactly the names usable with TLS.
    """

    def test_names(self):
        """
        Letters, digits and hyphens in dot-separated labels are accepted;
        underscores, leading or trailing hyphens, empty labels, all-digit
        last labels and non-ASCII letters are not.
        """
        for name in ["alice", "Bob", "node-2", "a.b.c", "x1", "9lives"]:
            self.assertTrue(is_dns_safe_name(name), name)
        for name in ["a_b", "-a", "a-", "a..b", ".a", "1.2", "\u00e9", "", None, "a" * 33]:
            self.assertFalse(is_dns_safe_name(name), name)
