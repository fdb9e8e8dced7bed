# -*- test-case-name: tests.unit.test_tls_checks,tests.integration.test_tls -*-
"""
Mutual TLS for peer links: loading the node's files, the TLS settings, and
the endpoints that run every peer link over them.

Every link of a TLS node is mutual TLS (1.3 preferred, 1.2 at least): both
sides present their node certificate, and both require the other's to
chain to the network CA (L{server_options}, L{client_options}).  No host
name is checked here: which member a certificate names is decided by
L{names_member}, and the hello that claims a name and an id is checked by
L{p2pchat.trust.binding}.

Nothing here imports the reactor; endpoints take it as an argument.
"""

import os
import re
from typing import Any, List, Optional, Tuple, Union

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from OpenSSL import SSL, crypto
from twisted.internet import endpoints, ssl
from twisted.internet.interfaces import (
    IStreamClientEndpoint,
    IStreamServerEndpoint,
)
from twisted.protocols.tls import TLSMemoryBIOFactory
from zope.interface import implementer

from p2pchat import endpoint_strings
from p2pchat.config import TLSFiles
from p2pchat.ops import activation

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


class TLSConfigError(Exception):
    """
    The TLS files cannot be used; C{str(error)} says why in one line.
    """


# -- loading the files ------------------------------------------------------


def _read(path: str, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise TLSConfigError(f"cannot read {what} {path}: {e.strerror}") from None


def _load_certificates(path: str, what: str) -> List[x509.Certificate]:
    blocks = _PEM_CERTIFICATE.findall(_read(path, what))
    if not blocks:
        raise TLSConfigError(f"{what} {path} holds no PEM certificate")
    try:
        return [x509.load_pem_x509_certificate(block) for block in blocks]
    except ValueError as e:
        raise TLSConfigError(f"{what} {path} holds a bad certificate: {e}") from None


def load_tls_files(
    files: TLSFiles,
) -> Tuple[Any, x509.Certificate, List[x509.Certificate], List[crypto.X509]]:
    """
    Load and cross-check the node's key, certificate chain and CA
    certificates.

    @return: the private key, the node certificate and the extra chain
        certificates that follow it in the certificate file (may be empty),
        as C{cryptography} objects, and the CA certificates as pyOpenSSL
        objects (what L{ssl.CertificateOptions} takes for C{caCerts}).
    @raise TLSConfigError: if a file is missing or malformed, the key does
        not match the certificate, the certificate has no DNS name, or it
        does not chain to the CA.
    """
    chain = _load_certificates(files.cert, "certificate file")
    authorities = _load_certificates(files.ca, "CA file")
    try:
        key = serialization.load_pem_private_key(_read(files.key, "key file"), password=None)
    except (ValueError, TypeError) as e:
        raise TLSConfigError(
            f"key file {files.key} is not an unencrypted PEM private key: {e}"
        ) from None
    leaf = chain[0]
    public = serialization.PublicFormat.SubjectPublicKeyInfo
    if key.public_key().public_bytes(
        serialization.Encoding.DER, public
    ) != leaf.public_key().public_bytes(serialization.Encoding.DER, public):
        raise TLSConfigError(f"key file {files.key} does not match certificate {files.cert}")
    if not certificate_names(leaf):
        raise TLSConfigError(
            f"certificate {files.cert} has no DNS subjectAltName; peers check the "
            "name in the hello against it (p2pchat-ca issue makes one)"
        )
    cas = [crypto.X509.from_cryptography(c) for c in authorities]
    _check_chain(leaf, chain[1:], cas, files)
    return key, leaf, chain[1:], cas


def _check_chain(
    leaf: x509.Certificate,
    extra: List[x509.Certificate],
    cas: List[crypto.X509],
    files: TLSFiles,
) -> None:
    store = crypto.X509Store()
    for ca in cas:
        store.add_cert(ca)
    chain = [crypto.X509.from_cryptography(c) for c in extra] or None
    try:
        crypto.X509StoreContext(
            store, crypto.X509.from_cryptography(leaf), chain=chain
        ).verify_certificate()
    except crypto.X509StoreContextError as e:
        raise TLSConfigError(
            f"certificate {files.cert} does not chain to the CA in {files.ca}: {e}"
        ) from None


def certificate_names(certificate: x509.Certificate) -> List[str]:
    """
    @return: the DNS names in C{certificate}'s subjectAltName extension.
    """
    try:
        extension = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName
        )
    except x509.ExtensionNotFound:
        return []
    return extension.value.get_values_for_type(x509.DNSName)


def names_member(certificate: x509.Certificate, name: object) -> bool:
    """
    Decide whether C{certificate} is the certificate of the member called
    C{name}: for a peer's hello (L{p2pchat.trust.binding.check_peer_name})
    and for a C{cert} entry (L{p2pchat.trust.attest.Attestations}) alike.

    C{name} must be one of the certificate's DNS subjectAltNames, compared
    without regard to ASCII case.  A wildcard name (C{*.example}) names no
    single member, so it matches nothing, not even the literal C{*.example}:
    a wildcard certificate would let its holder claim every name under it.

    @return: whether it is.
    """
    if not isinstance(name, str) or not name.isascii() or "*" in name:
        return False
    wanted = name.lower()
    return any(
        listed.isascii() and "*" not in listed and listed.lower() == wanted
        for listed in certificate_names(certificate)
    )


def _options(files: TLSFiles) -> ssl.CertificateOptions:
    key, cert, extra, cas = load_tls_files(files)
    return ssl.CertificateOptions(
        privateKey=key,
        certificate=cert,
        extraCertChain=extra,
        verify=True,
        caCerts=cas,
        requireCertificate=True,
        raiseMinimumTo=ssl.TLSVersion.TLSv1_2,
    )


def server_options(files: TLSFiles) -> ssl.CertificateOptions:
    """
    Build the TLS settings of a listening node: present the node
    certificate, demand one from every client and require it to chain to
    the network CA.  TLS 1.3 is used when both ends support it, 1.2 at
    least.

    Load it once at start and reuse it for every connection.

    @raise TLSConfigError: see L{load_tls_files}.
    """
    return _options(files)


def client_options(files: TLSFiles) -> ssl.CertificateOptions:
    """
    Build the TLS settings of a connecting node: present the node
    certificate and require the server's to chain to the network CA.  No
    host name is checked here (we dial addresses); see
    L{p2pchat.trust.binding.check_hello}.

    @raise TLSConfigError: see L{load_tls_files}.
    """
    return _options(files)


class PeerTLS:
    """
    A node's loaded TLS settings: load once at start with L{PeerTLS.load},
    then make every peer endpoint from it.

    @ivar files: the files it was loaded from.
    @ivar server: the options for inbound links (L{server_options}).
    @ivar client: the options for outbound links (L{client_options}).
    """

    def __init__(self, files: TLSFiles):
        """
        @raise TLSConfigError: see L{load_tls_files}.
        """
        self.files = files
        self.server = server_options(files)
        self.client = client_options(files)

    @classmethod
    def load(cls, files: TLSFiles) -> "PeerTLS":
        """
        @return: the settings loaded from C{files}.
        @raise TLSConfigError: see L{load_tls_files}.
        """
        return cls(files)

    def __repr__(self) -> str:
        return f"<PeerTLS cert={self.files.cert}>"

    def server_endpoint(
        self, reactor, endpoint: Union[str, IStreamServerEndpoint]
    ) -> IStreamServerEndpoint:
        """
        @return: L{wrap_server_endpoint} of C{endpoint} with these settings.
        """
        return wrap_server_endpoint(reactor, endpoint, self)

    def client_endpoint(
        self, reactor, host: str, port: int, timeout_s: float = 10
    ) -> IStreamClientEndpoint:
        """
        @return: L{wrap_client_endpoint} to C{host:port} with these settings.
        """
        return wrap_client_endpoint(reactor, host, port, self, timeout_s)


def _as_peer_tls(tls: Union[TLSFiles, PeerTLS]) -> PeerTLS:
    return PeerTLS(tls) if isinstance(tls, TLSFiles) else tls


# -- endpoints ---------------------------------------------------------------


@implementer(IStreamServerEndpoint)
class TLSServerEndpoint:
    """
    A server endpoint that runs mutual TLS over any stream endpoint (TCP,
    UNIX, systemd ...): the protocol built by the factory given to
    L{listen} only ever sees decrypted bytes.
    """

    def __init__(self, wrapped: IStreamServerEndpoint, options: ssl.CertificateOptions):
        self._wrapped = wrapped
        self._options = options

    def __repr__(self) -> str:
        return f"<TLSServerEndpoint over {self._wrapped!r}>"

    def listen(self, protocolFactory):
        """
        Listen on the wrapped endpoint, with TLS around C{protocolFactory}.

        @return: the wrapped endpoint's L{Deferred} of the listening port.
        """
        factory = TLSMemoryBIOFactory(self._options, False, protocolFactory)
        factory.noisy = getattr(protocolFactory, "noisy", True)
        return self._wrapped.listen(factory)


@implementer(IStreamClientEndpoint)
class TLSClientEndpoint:
    """
    A client endpoint that runs mutual TLS over another client endpoint;
    like L{endpoints.wrapClientTLS}, but as quiet in the log as the factory
    it wraps.
    """

    def __init__(self, wrapped: IStreamClientEndpoint, options: ssl.CertificateOptions):
        self._wrapped = wrapped
        self._options = options

    def __repr__(self) -> str:
        return f"<TLSClientEndpoint over {self._wrapped!r}>"

    def connect(self, protocolFactory):
        """
        Connect the wrapped endpoint, with TLS around C{protocolFactory}.

        @return: a L{Deferred} firing with the protocol C{protocolFactory}
            built, once the TCP connection is up (the TLS handshake follows;
            a protocol providing
            L{twisted.internet.interfaces.IHandshakeListener} hears when it
            completes).
        """
        factory = TLSMemoryBIOFactory(self._options, True, protocolFactory)
        factory.noisy = getattr(protocolFactory, "noisy", True)
        return self._wrapped.connect(factory).addCallback(
            lambda protocol: protocol.wrappedProtocol
        )


def _tcp_from_ssl_description(reactor, description: str, files: TLSFiles):
    """
    Turn C{ssl:PORT[:interface=I][:backlog=N]...} into a plain TCP server
    endpoint; mutual TLS is added around it by the caller.

    The C{privateKey}/C{certKey} arguments may name the same files as the
    TLS settings (they are then redundant); anything else would be a second,
    conflicting certificate and is refused.
    """
    args, kwargs = endpoint_strings.parse(description)
    arguments = args[1:]
    port = kwargs.pop("port", arguments[0] if arguments else None)
    if port is None:
        raise TLSConfigError(f"{description}: ssl endpoint needs a port")
    interface = kwargs.pop("interface", "")
    backlog = int(kwargs.pop("backlog", 50))
    for name in ("privateKey", "certKey"):
        given = kwargs.pop(name, None)
        if given is None:
            continue
        if os.path.abspath(given) not in (os.path.abspath(files.cert), os.path.abspath(files.key)):
            raise TLSConfigError(
                f"{description}: {name}={given} conflicts with --tls-cert/--tls-key; "
                "with mutual TLS give only ssl:PORT (the certificate comes from --tls-*)"
            )
    if kwargs:
        raise TLSConfigError(
            f"{description}: with --tls-* only port, interface and backlog may be "
            f"given, not {', '.join(sorted(kwargs))}"
        )
    if ":" in interface:
        return endpoints.TCP6ServerEndpoint(reactor, int(port), backlog, interface)
    return endpoints.TCP4ServerEndpoint(reactor, int(port), backlog, interface)


def wrap_server_endpoint(
    reactor,
    endpoint: Union[str, IStreamServerEndpoint],
    tls: Union[TLSFiles, "PeerTLS"],
) -> IStreamServerEndpoint:
    """
    Make a mutual-TLS server endpoint for peer links.

    @param endpoint: a server endpoint string (C{tcp:9090},
        C{ssl:9090:interface=...}, C{unix:PATH}, C{systemd:...}) or an
        endpoint object.  An C{ssl:} string is taken as "TCP on this port,
        with mutual TLS from C{tls}"; its C{privateKey}/C{certKey} may only
        repeat the C{--tls-*} files.
    @param tls: the L{TLSFiles}, or a L{PeerTLS} (preferred: the files
        are then read once).
    @raise TLSConfigError: if the files or the C{ssl:} arguments are bad.
    @raise ValueError: if the endpoint string cannot be parsed.
    """
    settings = _as_peer_tls(tls)
    if isinstance(endpoint, str):
        endpoint_type = endpoint_strings.parse(endpoint)[0][0]
        if endpoint_type == "ssl":
            wrapped = _tcp_from_ssl_description(reactor, endpoint, settings.files)
        else:
            wrapped = activation.server_endpoint(reactor, endpoint)
    else:
        wrapped = endpoint
    return TLSServerEndpoint(wrapped, settings.server)


def wrap_client_endpoint(
    reactor, host: str, port: int, tls: Union[TLSFiles, "PeerTLS"], timeout_s: float = 10
) -> IStreamClientEndpoint:
    """
    Make a mutual-TLS client endpoint for an outbound peer link to
    C{host:port} (names are resolved, IPv4 and IPv6 tried as
    L{endpoints.HostnameEndpoint} does).

    @param tls: the L{TLSFiles}, or a L{PeerTLS} (preferred).
    @param timeout_s: the TCP connect time-out.
    """
    return TLSClientEndpoint(
        endpoints.HostnameEndpoint(reactor, host, port, timeout=timeout_s),
        _as_peer_tls(tls).client,
    )


# -- checking a peer -----------------------------------------------------------


def tls_connection(transport: Any) -> Optional[SSL.Connection]:
    """
    @return: the pyOpenSSL connection under C{transport} (a
        L{twisted.protocols.tls.TLSMemoryBIOProtocol}, which is what a
        protocol behind L{wrap_server_endpoint} or L{wrap_client_endpoint}
        gets as its transport), or L{None} for a plain transport.
    """
    get_handle = getattr(transport, "getHandle", None)
    if get_handle is None:
        return None
    handle = get_handle()
    return handle if isinstance(handle, SSL.Connection) else None
