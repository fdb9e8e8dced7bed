# -*- test-case-name: tests.unit.test_ca -*-
"""
C{p2pchat-ca}: a tiny certificate authority for a closed p2pchat network.

    p2pchat-ca init DIR          # DIR/ca.pem and DIR/ca.key (mode 0600)
    p2pchat-ca issue DIR NAME    # DIR/NAME.pem and DIR/NAME.key (mode 0600)

The CA is an EC P-256 key with a self-signed certificate (CA:TRUE, path
length 0, keyCertSign and cRLSign, valid 10 years).  A node certificate is an
EC P-256 key with a certificate for C{DNS:NAME} (serverAuth and clientAuth,
valid 2 years) signed by that CA: exactly what L{p2pchat.trust.tls} asks of a peer.

Names given to C{issue} must be valid p2pchat display names I{and} DNS names
(letters, digits and hyphens in dot-separated labels), because a peer's
hello name is checked against the certificate's DNS subjectAltName.

Nothing is ever overwritten: files are created with C{O_EXCL}, and an
existing CA or node certificate makes the command fail.
"""

import argparse
import datetime
import os
import re
import sys
from typing import List, Optional, TextIO, Tuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from p2pchat.log.entry import validate_name

CA_CERT_FILE = "ca.pem"
CA_KEY_FILE = "ca.key"
CA_VALIDITY_DAYS = 3650
NODE_VALIDITY_DAYS = 730
DEFAULT_CA_NAME = "p2pchat network CA"
# Certificates start a little in the past, so that a peer whose clock is
# slightly behind does not reject a certificate made a moment ago.
BACKDATE = datetime.timedelta(minutes=5)
RESERVED_NAMES = ("ca",)

_DNS_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


class CAError(Exception):
    """
    A C{p2pchat-ca} command cannot be carried out; C{str(error)} says why in
    one line.
    """


def is_dns_safe_name(name: object) -> bool:
    """
    @return: whether C{name} can be used as a p2pchat name on a TLS network:
        a valid display name (L{p2pchat.log.entry.validate_name}) that is also
        a DNS name: dot-separated labels of 1-63 ASCII letters, digits and
        hyphens, no label starting or ending with a hyphen, the last label
        not all digits (so it cannot pass for an IP address).
    """
    if not validate_name(name):
        return False
    labels = name.split(".")
    if not all(_DNS_LABEL.match(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def check_node_name(name: str) -> None:
    """
    @raise CAError: if C{name} cannot be given a node certificate.
    """
    if not is_dns_safe_name(name):
        raise CAError(
            f"{name!r} is not a valid node name for TLS: use 1-32 characters, "
            "letters, digits and hyphens, in labels separated by dots "
            "(like alice or node-2.example)"
        )
    if name.lower() in RESERVED_NAMES:
        raise CAError(f"{name!r} is reserved (it would collide with the CA's files)")


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _write_new(path: str, data: bytes, mode: int) -> None:
    """
    Create C{path} with C{mode} and write C{data}; fail if it exists.

    @raise CAError: if the file exists or cannot be written.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise CAError(f"{path} already exists; not overwriting it") from None
    except OSError as e:
        raise CAError(f"cannot create {path}: {e.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise CAError(f"cannot write {path}: {e.strerror}") from None


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _refuse_existing(paths: List[str]) -> None:
    for path in paths:
        if os.path.lexists(path):
            raise CAError(f"{path} already exists; not overwriting it")


def init_ca(directory: str, common_name: str = DEFAULT_CA_NAME) -> Tuple[str, str]:
    """
    Create a network CA in C{directory} (created with mode 0700 if needed).

    @param common_name: the CA certificate's subject common name.
    @return: the paths of the CA certificate and of its key.
    @raise CAError: if the CA files exist already or cannot be written.
    """
    cert_path = os.path.join(directory, CA_CERT_FILE)
    key_path = os.path.join(directory, CA_KEY_FILE)
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as e:
        raise CAError(f"cannot create {directory}: {e.strerror}") from None
    _refuse_existing([cert_path, key_path])
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = _now()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=CA_VALIDITY_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def _load_ca(directory: str) -> Tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    cert_path = os.path.join(directory, CA_CERT_FILE)
    key_path = os.path.join(directory, CA_KEY_FILE)
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        with open(key_path, "rb") as f:
            key = serialization.load_pem_private_key(f.read(), password=None)
    except FileNotFoundError as e:
        raise CAError(
            f"no CA in {directory}: {e.filename} is missing (run p2pchat-ca init {directory})"
        ) from None
    except OSError as e:
        raise CAError(f"cannot read {e.filename}: {e.strerror}") from None
    except (ValueError, TypeError) as e:
        raise CAError(f"cannot load the CA in {directory}: {e}") from None
    if cert.public_key().public_numbers() != key.public_key().public_numbers():
        raise CAError(f"{cert_path} and {key_path} do not belong together")
    return cert, key


def issue_node(directory: str, name: str, days: int = NODE_VALIDITY_DAYS) -> Tuple[str, str]:
    """
    Issue a node certificate for C{name}, signed by the CA in C{directory}.

    @param days: how long the certificate is valid.
    @return: the paths of the new certificate (C{DIR/NAME.pem}) and key
        (C{DIR/NAME.key}, mode 0600).
    @raise CAError: if the name is not usable, the CA is missing, or the
        node files exist already.
    """
    check_node_name(name)
    if days < 1:
        raise CAError(f"--days must be at least 1, got {days}")
    ca_cert, ca_key = _load_ca(directory)
    cert_path = os.path.join(directory, name + ".pem")
    key_path = os.path.join(directory, name + ".key")
    _refuse_existing([cert_path, key_path])
    key = ec.generate_private_key(ec.SECP256R1())
    public = key.public_key()
    now = _now()
    not_after = min(
        now + datetime.timedelta(days=days), ca_cert.not_valid_after_utc
    )
    ca_ski = ca_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
        .issuer_name(ca_cert.subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write_new(key_path, _key_pem(key), 0o600)
    _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


class _UsageError(Exception):
    """
    The command line is malformed.
    """


class _Parser(argparse.ArgumentParser):
    """
    An argument parser that raises instead of exiting, so that L{main} can
    be called from tests.
    """

    output: Optional[TextIO] = None

    def error(self, message: str):
        raise _UsageError(message)

    def print_help(self, file: Optional[TextIO] = None) -> None:
        super().print_help(file or self.output)

    def exit(self, status: int = 0, message: Optional[str] = None):
        if message:
            raise _UsageError(message.strip())
        raise _HelpShown()


class _HelpShown(Exception):
    """
    C{--help} was given and the help was printed.
    """


def _parser(stdout: TextIO) -> _Parser:
    parser = _Parser(
        prog="p2pchat-ca",
        description="A certificate authority for a closed p2pchat network.",
        epilog=(
            "Then start each node with --tls-cert DIR/NAME.pem --tls-key "
            "DIR/NAME.key --tls-ca DIR/ca.pem and --name NAME. Copy only "
            "ca.pem, NAME.pem and NAME.key to a node; keep ca.key offline."
        ),
    )
    parser.output = stdout
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    init = commands.add_parser(
        "init", help="create a network CA: DIR/ca.pem and DIR/ca.key (mode 0600)"
    )
    init.add_argument("directory", metavar="DIR")
    init.add_argument(
        "--ca-name", default=DEFAULT_CA_NAME, help="the CA's common name (default: %(default)s)"
    )
    issue = commands.add_parser(
        "issue",
        help="issue a node certificate: DIR/NAME.pem and DIR/NAME.key (mode 0600)",
    )
    issue.add_argument("directory", metavar="DIR")
    issue.add_argument(
        "name",
        metavar="NAME",
        help="the node's --name; letters, digits, hyphens and dots",
    )
    issue.add_argument(
        "--days",
        type=int,
        default=NODE_VALIDITY_DAYS,
        help="validity in days (default: %(default)s)",
    )
    for sub in (init, issue):
        sub.output = stdout
    return parser


def main(
    argv: Optional[List[str]] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """
    Run C{p2pchat-ca}.

    @param argv: the arguments after the program name (default:
        C{sys.argv[1:]}).
    @return: the exit status: 0 on success, 1 if the command failed, 2 for
        a malformed command line.
    """
    stdout = sys.stdout if stdout is None else stdout
    stderr = sys.stderr if stderr is None else stderr
    parser = _parser(stdout)
    try:
        arguments = parser.parse_args(sys.argv[1:] if argv is None else argv)
    except _HelpShown:
        return 0
    except _UsageError as e:
        print(parser.format_usage().rstrip(), file=stderr)
        print(f"p2pchat-ca: error: {e}", file=stderr)
        return 2
    try:
        if arguments.command == "init":
            cert_path, key_path = init_ca(arguments.directory, arguments.ca_name)
            print(f"created CA certificate {cert_path}", file=stdout)
            print(f"created CA key {key_path} (mode 0600; keep it secret)", file=stdout)
        else:
            cert_path, key_path = issue_node(
                arguments.directory, arguments.name, arguments.days
            )
            print(f"created certificate {cert_path} for {arguments.name}", file=stdout)
            print(f"created key {key_path} (mode 0600)", file=stdout)
    except CAError as e:
        print(f"p2pchat-ca: error: {e}", file=stderr)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
