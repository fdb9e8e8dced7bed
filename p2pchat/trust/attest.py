"""
Name attestations: binding an Ed25519 node id to a member's certificate,
in the log, so every node of a TLS network can check an author's name.

A hello proves a peer's id and name to its direct neighbours only.  So on
a TLS network each node also posts one C{cert} entry (signed, like every
entry, by its id key) whose body is::

    name   the name in the certificate (its DNS subjectAltName)
    cert   the member's certificate, PEM
    proof  hex signature by the certificate's private key over
           PROOF_CONTEXT + the node id (ASCII)

The id key signs the entry and the certificate key signs the id: the two
keys vouch for each other.  A node that holds the network's CA verifies
the entry (chain, validity, name in the certificate, proof) and from then
on shows that author under the certified name, whatever name its later
entries claim; authors without a verified attestation are marked as
unverified.  Entries received from peers are admitted by
L{p2pchat.log.admission}: on a TLS network a C{cert} entry that does not
verify is refused, and so is every other entry of an author until its
C{cert} entry has verified.
"""

import datetime
from typing import Any, Dict, Iterable, List, Optional

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from p2pchat.trust.tls import certificate_names, names_member

PROOF_CONTEXT = b"p2pchat-cert-v1\n"


def _sign(key: Any, data: bytes) -> bytes:
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(data, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign(data)
    raise ValueError(f"unsupported certificate key type {type(key).__name__}")


def _verify(public_key: Any, signature: bytes, data: bytes) -> bool:
    try:
        if isinstance(public_key, ec.EllipticCurvePublicKey):
            public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
        elif isinstance(public_key, rsa.RSAPublicKey):
            public_key.verify(signature, data, padding.PKCS1v15(), hashes.SHA256())
        elif isinstance(public_key, ed25519.Ed25519PublicKey):
            public_key.verify(signature, data)
        else:
            return False
    except InvalidSignature:
        return False
    return True


def attestation_body(key: Any, certificate: x509.Certificate, node_id: str, name: str) -> Dict:
    """
    @return: the body of the C{cert} entry binding C{node_id} to
        C{certificate}, signed with the certificate's private C{key}.
    """
    return {
        "name": name,
        "cert": certificate.public_bytes(serialization.Encoding.PEM).decode("ascii"),
        "proof": _sign(key, PROOF_CONTEXT + node_id.encode("ascii")).hex(),
    }


class Attestations:
    """
    Checks C{cert} entries against the network's CA and remembers the
    certified name of each author.

    @ivar names: certified name by node id.
    """

    def __init__(self, authorities: Iterable[x509.Certificate], clock=None):
        """
        @param authorities: the network's CA certificates.
        @param clock: returns the current time as an aware datetime (for
            tests); by default the real UTC time.
        """
        self._authorities: List[x509.Certificate] = list(authorities)
        self._now = clock or (lambda: datetime.datetime.now(datetime.timezone.utc))
        self.names: Dict[str, str] = {}

    def check(self, author: str, body: Dict[str, Any]) -> Optional[str]:
        """
        Verify a C{cert} entry's body for C{author}.

        @return: the certified name, or C{None} with the reason ignored;
            see L{why_not} for the reason.
        """
        return None if self.why_not(author, body) else body["name"]

    def why_not(self, author: str, body: Dict[str, Any]) -> Optional[str]:
        """
        @return: why C{body} does not bind C{author} to a member's name, or
            C{None} if it does.
        """
        try:
            certificate = x509.load_pem_x509_certificate(body["cert"].encode("ascii"))
            proof = bytes.fromhex(body["proof"])
        except (ValueError, UnicodeEncodeError):
            return "certificate or proof is malformed"
        now = self._now()
        if not certificate.not_valid_before_utc <= now <= certificate.not_valid_after_utc:
            return "certificate is not valid now"
        if not any(_issued_by(certificate, ca) for ca in self._authorities):
            return "certificate is not from this network's CA"
        if not names_member(certificate, body["name"]):
            names = ", ".join(certificate_names(certificate)[:5]) or "no DNS name"
            return f"certificate is for {names}, not {body['name']}"
        if not _verify(certificate.public_key(), proof, PROOF_CONTEXT + author.encode("ascii")):
            return "proof is not the certificate key's signature of this id"
        return None

    def learn(self, author: str, body: Dict[str, Any]) -> Optional[str]:
        """
        Check a committed C{cert} entry and remember the name if it holds.

        @return: why it was not believed, or C{None}.
        """
        reason = self.why_not(author, body)
        if reason is None:
            self.names[author] = body["name"]
        return reason


def _issued_by(certificate: x509.Certificate, authority: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(authority)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True
