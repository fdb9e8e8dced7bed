"""
Tests for L{p2pchat.trust.refusals}: a failed link between a TLS node and
its peer is explained in words an operator can act on, and a plain link
that meets TLS says so instead of waiting for a hello.
"""

from OpenSSL import SSL
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh import hello
from p2pchat.trust import refusals
from tests.unit.test_peer import TIMEOUT_S, PeerTestCase

# The first bytes of a TLS 1.2/1.3 ClientHello record, and of an alert.
CLIENT_HELLO = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"
ALERT = b"\x15\x03\x03\x00\x02\x02\x30"


class ExplainTests(SynchronousTestCase):
    """
    L{refusals.explain_tls_failure} adds what OpenSSL's words mean.
    """

    def test_known_refusals(self):
        """
        An unknown CA, a failed verification and a plain peer are each
        explained after OpenSSL's own words.
        """
        self.assertEqual(
            refusals.explain_tls_failure("tlsv1 alert unknown ca"),
            "tlsv1 alert unknown ca: the peer does not trust this node's certificate: "
            "it was not signed by the peer's --tls-ca (are both nodes in one network?)",
        )
        self.assertEqual(
            refusals.explain_tls_failure("certificate verify failed"),
            "certificate verify failed: the peer's certificate is not signed by your "
            "--tls-ca (are both nodes in one network?)",
        )
        self.assertEqual(
            refusals.explain_tls_failure("wrong version number"),
            "wrong version number: the peer does not speak TLS: it runs without --tls-*",
        )

    def test_unknown_words_unchanged(self):
        """
        Anything else is left as OpenSSL said it.
        """
        self.assertEqual(refusals.explain_tls_failure("bad mac"), "bad mac")

    def test_peer_reason_explained(self):
        """
        The reason a link logs for a failed TLS handshake carries the
        meaning.
        """
        failure = Failure(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        self.assertIn("not signed by your --tls-ca", hello.tls_failure_reason(failure))


class LooksLikeTLSTests(SynchronousTestCase):
    """
    L{refusals.looks_like_tls} tells TLS records from JSON lines.
    """

    def test_records(self):
        self.assertTrue(refusals.looks_like_tls(CLIENT_HELLO))
        self.assertTrue(refusals.looks_like_tls(ALERT))

    def test_not_records(self):
        for data in (b'{"type":"hello"}\n', b"\x16", b"", b"\x16\x01", b"hello\r\n"):
            self.assertFalse(refusals.looks_like_tls(data), data)


class PlainLinkMeetsTLSTests(PeerTestCase):
    """
    On a plain link, a peer that speaks TLS is named at once; a silent
    peer's time-out says what silence may mean.
    """

    def test_tls_client_hello_on_plain_listener(self):
        """
        A TLS ClientHello as the first bytes on a plain listener closes the
        link with a reason saying the peer speaks TLS and this node does
        not, without waiting for the handshake time-out.
        """
        self.connect()
        self.protocol.dataReceived(CLIENT_HELLO)
        self.assertClosedWithError("the peer speaks TLS and this node does not")
        self.assertEqual(self.handler.calls, [])
        warnings = [e for e in self.log_events if e["log_level"].name == "warn"]
        self.assertEqual(len(warnings), 1)
        self.assertEqual(warnings[0]["reason"], refusals.PLAIN_MEETS_TLS)

    def test_tls_alert_on_plain_dialler(self):
        """
        A plain node that dialled a TLS node and got a TLS alert back says
        the peer speaks TLS.
        """
        self.connect(outbound=True)
        self.protocol.dataReceived(ALERT)
        self.assertFalse(self.transport.connected)
        warnings = [e for e in self.log_events if e["log_level"].name == "warn"]
        self.assertEqual([e["reason"] for e in warnings], [refusals.PLAIN_MEETS_TLS])

    def test_tls_bytes_later_are_a_bad_frame(self):
        """
        Only the first bytes are looked at: the same bytes after a hello
        are an ordinary bad frame.
        """
        self.accept()
        self.protocol.dataReceived(CLIENT_HELLO + b"\n")
        self.assertClosedWithError("bad frame")

    def test_silent_listener_hint_for_plain_dialler(self):
        """
        A plain dialler that hears nothing until the time-out says a TLS
        listener would be silent too.
        """
        self.connect(outbound=True)
        self.clock.advance(TIMEOUT_S)
        warnings = [e for e in self.log_events if e["log_level"].name == "warn"]
        self.assertEqual(
            [e["reason"] for e in warnings],
            [f"no hello within {TIMEOUT_S:g} s; the peer sent nothing: a TLS node waits "
             "for the dialler's TLS handshake, so if it is one, this node needs --tls-* too"],
        )

    def test_no_hint_when_the_peer_spoke(self):
        """
        A plain listener whose peer sent part of a line says only that no
        hello came.
        """
        self.connect()
        self.protocol.dataReceived(b'{"type":')
        self.clock.advance(TIMEOUT_S)
        self.assertClosedWithError(f"no hello within {TIMEOUT_S:g} s")
        self.assertNotIn("TLS", self.written()[-1]["reason"])


class SilenceHintTests(SynchronousTestCase):
    """
    L{refusals.silence_hint} for each side of a link.
    """

    def test_tls_listener_never_handshaken(self):
        self.assertIn(
            "without --tls-* dialling in waits silently",
            refusals.silence_hint(tls_link=True, outbound=False, heard=False),
        )

    def test_no_hint(self):
        self.assertEqual(refusals.silence_hint(True, False, True), "")
        self.assertEqual(refusals.silence_hint(False, False, False), "")
        self.assertEqual(refusals.silence_hint(True, True, False), "")
        self.assertEqual(refusals.silence_hint(False, True, True), "")
