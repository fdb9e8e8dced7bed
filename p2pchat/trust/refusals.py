# -*- test-case-name: tests.unit.test_tls_refusals -*-
"""
What a failed link between a TLS node and its peer means, in words an
operator can act on: OpenSSL's refusals (C{tlsv1 alert unknown ca},
C{certificate verify failed}) and the silence or stray bytes when one side
speaks TLS and the other does not.
"""

from p2pchat.trust import tls

_NO_CERTIFICATE = "the peer presented no certificate: it needs --tls-cert and --tls-key"
_PLAIN_PEER = "the peer does not speak TLS: it runs without --tls-*"

# What OpenSSL's words mean for a p2pchat operator, by the words.
_MEANINGS = (
    ("unknown ca", "the peer does not trust this node's certificate: it was not signed "
     "by the peer's --tls-ca (are both nodes in one network?)"),
    ("certificate verify failed", "the peer's certificate is not signed by your --tls-ca "
     "(are both nodes in one network?)"),
    ("certificate has expired", "a certificate has expired; issue a new one with p2pchat-ca"),
    ("certificate expired", "a certificate has expired; issue a new one with p2pchat-ca"),
    ("certificate required", _NO_CERTIFICATE),
    ("did not return a certificate", _NO_CERTIFICATE),
    ("wrong version number", _PLAIN_PEER),
    ("packet length too long", _PLAIN_PEER),
    ("record layer failure", _PLAIN_PEER),
    ("http request", _PLAIN_PEER),
)

PLAIN_MEETS_TLS = (
    "the peer speaks TLS and this node does not: give both nodes "
    "--tls-cert, --tls-key and --tls-ca, or neither"
)


def explain_tls_failure(openssl_text: str) -> str:
    """
    @param openssl_text: what OpenSSL said about a failed TLS handshake,
        e.g. C{tlsv1 alert unknown ca}.
    @return: C{openssl_text}, followed by what it means for this node when
        known: C{certificate verify failed: the peer's certificate is not
        signed by your --tls-ca (...)}.
    """
    lowered = openssl_text.lower()
    for words, meaning in _MEANINGS:
        if words in lowered:
            return f"{openssl_text}: {meaning}"
    return openssl_text


def looks_like_tls(first_bytes: bytes) -> bool:
    """
    @param first_bytes: the first bytes a peer sent on a plain link.
    @return: whether they start a TLS record (a handshake such as a
        ClientHello, an alert, ...: content type 20-23, then major version
        3), which no JSON line does.
    """
    return len(first_bytes) >= 2 and first_bytes[0] in (20, 21, 22, 23) and first_bytes[1] == 3


def plain_meets_tls(transport, first_bytes: bytes) -> bool:
    """
    @return: whether the first bytes on a plain (not TLS) link are a TLS
        record: the peer speaks TLS and this node does not.
    """
    return looks_like_tls(first_bytes) and tls.tls_connection(transport) is None


def silence_hint(tls_link: bool, outbound: bool, heard: bool) -> str:
    """
    Why a peer may have stayed silent until the handshake time-out.

    A plain node dialling a TLS node waits for the listener's hello, while
    the TLS listener waits for the dialler's TLS handshake: both say
    nothing.

    @param tls_link: whether this side runs TLS on the link.
    @param outbound: whether this side dialled.
    @param heard: whether anything came from the peer (for a TLS link:
        whether the TLS handshake finished).
    @return: a clause to add to the time-out's reason, or C{""}.
    """
    if heard:
        return ""
    if tls_link and not outbound:
        return (
            "; the peer never started TLS: a node without --tls-* dialling in "
            "waits silently"
        )
    if not tls_link and outbound:
        return (
            "; the peer sent nothing: a TLS node waits for the dialler's TLS "
            "handshake, so if it is one, this node needs --tls-* too"
        )
    return ""
