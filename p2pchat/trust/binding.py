# -*- test-case-name: tests.integration.test_tls, tests.unit.test_certificate_names -*-
"""
The binding of a node's Ed25519 identity to its TLS session, checked in the
peer's hello.

The TLS layer (L{p2pchat.trust.tls}) checks I{no} host name: a listener
does not know who is connecting, and a connector dials an address, not a
name.  Instead, once the peer's hello has arrived, the node checks two
things with L{check_hello}:

  1. the name the hello claims is a DNS subjectAltName of the peer's
     certificate (L{check_peer_name}, with L{p2pchat.trust.tls.names_member},
     the one check the attestations of L{p2pchat.trust.attest} use too);
  2. the hello's C{bind} field is a signature, by the key of the id the
     hello claims, over this TLS session's exporter value
     (L{binding_material}, L{sign_binding}, L{verify_binding}).

The exporter (RFC 5705 / RFC 8446 section 7.5) is a secret both ends of one
TLS session derive, and no other session shares; so a member holding a
valid certificate cannot claim another member's id (it cannot sign) nor
replay another session's signature (the exporter differs).
"""

from typing import Any, Dict, Optional

from OpenSSL import SSL

from p2pchat.canonical import is_lower_hex
from p2pchat.log.identity import Identity, is_node_id, verify_signature
from p2pchat.trust.ca import is_dns_safe_name
from p2pchat.trust.tls import certificate_names, names_member, tls_connection

EXPORTER_LABEL = b"EXPORTER-p2pchat-hello"
EXPORTER_LENGTH = 32
BINDING_CONTEXT = b"p2pchat-bind-v1\n"
BINDING_FIELD = "bind"
SIGNATURE_HEX_LENGTH = 128


def check_peer_name(transport: Any, claimed_name: str) -> Optional[str]:
    """
    Check, with L{names_member}, that C{claimed_name} (the name in the
    peer's hello) is a DNS subjectAltName of the peer's certificate.  DNS
    names compare without regard to case; wildcards match nothing.

    @param transport: the link's transport, after the TLS handshake.
    @return: L{None} if it is, else the reason to log and refuse the link.
    """
    connection = tls_connection(transport)
    if connection is None:
        return "no certificate: the link is not TLS"
    certificate = connection.get_peer_certificate(as_cryptography=True)
    if certificate is None:
        return "no certificate: the peer presented none"
    if names_member(certificate, claimed_name):
        return None
    shown = ", ".join(certificate_names(certificate)[:5]) or "no DNS name"
    if not is_dns_safe_name(claimed_name):
        return f"certificate is for {shown}, hello claims {claimed_name!r} (not a DNS name)"
    return f"certificate is for {shown}, hello claims {claimed_name!r}"


def binding_material(transport: Any) -> Optional[bytes]:
    """
    @return: this TLS session's exporter value for the hello binding
        (C{EXPORTER_LENGTH} bytes, label C{EXPORTER_LABEL}, no context),
        which both ends of the session compute alike; L{None} on a plain
        transport.
    @raise ValueError: on a TLS transport whose handshake has not finished
        (call it from C{IHandshakeListener.handshakeCompleted} or later).
    """
    connection = tls_connection(transport)
    if connection is None:
        return None
    try:
        return connection.export_keying_material(EXPORTER_LABEL, EXPORTER_LENGTH, None)
    except SSL.Error as e:
        raise ValueError(f"TLS handshake not finished: {e}") from None


def _binding_message(material: bytes) -> bytes:
    return BINDING_CONTEXT + material


def sign_binding(identity: Identity, material: bytes) -> str:
    """
    @return: the hex Ed25519 signature by C{identity} over
        C{b"p2pchat-bind-v1\\n" + material}: the hello's C{bind} field.
    """
    return identity.sign(_binding_message(material)).hex()


def verify_binding(node_id: str, material: bytes, signature_hex: object) -> bool:
    """
    @return: whether C{signature_hex} is C{node_id}'s signature made by
        L{sign_binding} over C{material}.  Anything malformed is C{False}.
    """
    if not is_node_id(node_id) or not isinstance(signature_hex, str):
        return False
    if not is_lower_hex(signature_hex, SIGNATURE_HEX_LENGTH):
        return False
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    return verify_signature(node_id, _binding_message(material), signature)


def check_hello(transport: Any, hello: Dict[str, Any]) -> Optional[str]:
    """
    Everything a TLS node checks in a peer's hello: the claimed name is in
    the peer's certificate, and C{bind} proves the claimed id's key signed
    this session's exporter.

    On a plain transport nothing is checked (L{None}): plain nodes keep
    version 1 behaviour.

    @param hello: a hello frame as returned by L{p2pchat.mesh.wire.parse_frame}.
    @return: L{None} to accept, else the reason to log and refuse.
    """
    if tls_connection(transport) is None:
        return None
    refusal = check_peer_name(transport, hello["name"])
    if refusal is not None:
        return refusal
    try:
        material = binding_material(transport)
    except ValueError as e:
        return str(e)
    signature = hello.get(BINDING_FIELD)
    if signature is None:
        return "hello has no bind signature (required on TLS links)"
    if not verify_binding(hello["id"], material, signature):
        return "hello bind signature does not match its id and this TLS session"
    return None
