"""
Tests for L{p2pchat.faces.lines}, cleaning a typed console line, on the
plain console and over telnet.
"""

import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport

from p2pchat.faces.console import MAX_LINE_BYTES, ConsoleProtocol
from p2pchat.faces.lines import strip_leading_controls, without_line_ending
from tests.unit.test_telnet import _TelnetTestCase


class LineTests(_TelnetTestCase):
    """
    Cleaning a typed line: its length counts the text, and leading control
    characters do not turn a command into a message.
    """

    def plain(self):
        console = ConsoleProtocol(self.node.chat)
        transport = StringTransport()
        console.makeConnection(transport)
        transport.clear()
        return console, transport

    def test_limit_counts_text_not_line_ending(self):
        """
        A line of exactly L{MAX_LINE_BYTES} is read whether it ends in LF
        or CRLF, on the plain console and over telnet; one byte more is
        refused either way.
        """
        exact = b"/search " + b"w" * (MAX_LINE_BYTES - len(b"/search "))
        refused = f"error: line longer than {MAX_LINE_BYTES} bytes; ignored\r\n".encode()
        for connect in (self.plain, self.connected):
            for ending in (b"\n", b"\r\n"):
                session, transport = connect()
                self.type(session, exact + ending)
                self.assertEqual(transport.value(), b"0 matching message(s)\r\n", ending)
                transport.clear()
                self.type(session, exact + b"w" + ending + b"/peers" + ending)
                self.assertEqual(transport.value(), refused + b"no known peers\r\n")

    def test_leading_control_characters_dropped(self):
        """
        C{^L} (or any C0, DEL or C1 control) before a command leaves it a
        command; before text, the message is the text; a line of nothing
        but control characters is ignored.
        """
        session, transport = self.plain()
        self.type(session, b"\x0c/peers\r\n\x1b\x7f\xc2\x85/peers\n")
        self.assertEqual(transport.value(), b"no known peers\r\n" * 2)
        transport.clear()
        self.type(session, b"\x03\x04\x1b\r\n\x0c\n\x00\x0c hi\n")
        self.assertRegex(transport.value(), rb"^\[\d\d:\d\d:\d\d\] <alice>  hi\r\n$")
        self.assertEqual(self.node.chat.history(1)[0].text, " hi")

    def test_strip_leading_controls(self):
        """
        TAB is not dropped; controls after the first other character stay.
        """
        self.assertEqual(strip_leading_controls("\x0c\x00/peers"), "/peers")
        self.assertEqual(strip_leading_controls("\t/peers"), "\t/peers")
        self.assertEqual(strip_leading_controls("a\x0cb"), "a\x0cb")
        self.assertEqual(strip_leading_controls("\x03\x85"), "")

    @given(st.text())
    def test_strip_leading_controls_property(self, text):
        """
        The result is a suffix of the text and does not start with a
        control other than TAB; everything dropped is such a control.
        """
        cleaned = strip_leading_controls(text)
        self.assertTrue(text.endswith(cleaned))
        dropped = text[: len(text) - len(cleaned)]
        self.assertTrue(all(unicodedata.category(c) == "Cc" and c != "\t" for c in dropped))
        if cleaned:
            self.assertFalse(unicodedata.category(cleaned[0]) == "Cc" and cleaned[0] != "\t")

    def test_without_line_ending(self):
        """
        Only the CR of a CRLF ending is dropped.
        """
        self.assertEqual(without_line_ending(b"text\r"), b"text")
        self.assertEqual(without_line_ending(b"text"), b"text")
        self.assertEqual(without_line_ending(b"\r\r"), b"\r")
