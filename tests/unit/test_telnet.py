"""
Tests for L{p2pchat.faces.telnet}, the console over telnet: exact
negotiation bytes over a L{StringTransport}, Twisted's own telnet client
over L{iosim}, and a raw client that never speaks telnet.
"""

from twisted.conch.telnet import (
    AO,
    AYT,
    BRK,
    DO,
    DONT,
    EL,
    IAC,
    IP,
    SGA,
    WILL,
    WONT,
    TelnetProtocol,
    TelnetTransport,
)
from twisted.internet.protocol import Factory
from twisted.internet.testing import StringTransport
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.faces.console import (
    CONSOLE_LINE_BURST,
    MAX_LINE_BYTES,
    PASTE_WINDOW_S,
    TURN_BREAK_S,
    ConsoleProtocol,
)
from p2pchat.faces.telnet import (
    ABORT,
    BINARY,
    EOF,
    SUSP,
    TIMING_MARK,
    ConsoleTelnetTransport,
    TelnetConsoleFactory,
)
from p2pchat.faces.words import PASTE_LINES
from tests.nodes import Network

OFFERS = IAC + WILL + BINARY + b"\r\0"
CLEARED = b"*** line cleared\r\n"
HEBREW = "\u05e9\u05dc\u05d5\u05dd \u05dc \u05dd"  # "shalom", lamed, final mem


class _Consoles(Factory):
    """
    Builds plain consoles of one node, as the service's console factory
    does.
    """

    def __init__(self, node):
        self.node = node

    def buildProtocol(self, addr):
        return ConsoleProtocol(self.node.chat)


class _TelnetTestCase(SynchronousTestCase):
    def setUp(self):
        self.net = Network(self)
        self.node = self.net.node("alice")

    def server(self):
        """
        @return: a telnet console session and the transport it writes to.
        """
        session = TelnetConsoleFactory(_Consoles(self.node)).buildProtocol(None)
        transport = StringTransport()
        session.makeConnection(transport)
        return session, transport

    def connected(self):
        """
        @return: a session past its greeting, and its transport, cleared.
        """
        session, transport = self.server()
        transport.clear()
        return session, transport

    def type(self, session, data):
        session.dataReceived(data)
        self.net.settle()


class NegotiationTests(_TelnetTestCase):
    """
    The options a session offers and agrees to, byte for byte.
    """

    def test_offers_binary_then_greets(self):
        """
        A new session offers to send binary, returns to the start of the
        line (so the greeting covers what a raw client shows of the offer)
        and greets; it offers nothing else.
        """
        _, transport = self.server()
        self.assertEqual(
            transport.value(),
            OFFERS + b"p2pchat: you are alice (" + self.node.node_id[:8].encode()
            + b"); type /help for commands\r\n",
        )

    def test_asks_for_binary_once_answered(self):
        """
        Once the client agrees to binary output, the session asks it to
        send binary too; its agreement ends the negotiation.
        """
        session, transport = self.connected()
        session.dataReceived(IAC + DO + BINARY)
        self.assertEqual(transport.value(), IAC + DO + BINARY)
        transport.clear()
        session.dataReceived(IAC + WILL + BINARY)
        self.assertEqual(transport.value(), b"")

    def test_asks_for_binary_when_refused(self):
        """
        A client that will not receive binary is still asked to send it.
        """
        session, transport = self.connected()
        session.dataReceived(IAC + DONT + BINARY)
        self.assertEqual(transport.value(), IAC + DO + BINARY)

    def test_pastes_joined_once_a_telnet_client_answered(self):
        """
        A client that answered the offer (yes or no) is a telnet client at
        a terminal: a paste of many lines is one multi-line message.  A
        client that never answered (nc, a script) sends a message a line.
        """
        paste = b"".join(b"row %d\r\n" % i for i in range(PASTE_LINES + 3))
        raw, _ = self.connected()
        self.type(raw, paste)
        self.assertEqual(len(self.node.chat.history(100)), PASTE_LINES + 3)
        for answer in (IAC + DO + BINARY, IAC + DONT + BINARY):
            session, transport = self.connected()
            # A paste arriving in two reads (telnet sends its first line
            # alone) is one paste.
            first = paste.index(b"\n") + 1
            before = len(self.node.chat.history(100))
            self.type(session, answer + paste[:first])
            self.type(session, paste[first:])
            self.assertEqual(len(self.node.chat.history(100)), before)
            self.net.clock.advance(PASTE_WINDOW_S)
            self.net.settle()
            self.assertIn(b"one multi-line message", transport.value())
            self.assertEqual(
                self.node.chat.history(1)[0].text,
                "\n".join(f"row {i}" for i in range(PASTE_LINES + 3)),
            )

    def test_agrees_to_sga_and_binary_when_asked(self):
        """
        SUPPRESS-GO-AHEAD and BINARY are agreed to whichever side asks;
        other options are refused.
        """
        session, transport = self.connected()
        for asked, answer in [
            (IAC + DO + SGA, IAC + WILL + SGA),
            (IAC + WILL + SGA, IAC + DO + SGA),
            (IAC + WILL + BINARY, IAC + DO + BINARY),
            (IAC + DO + b"\x01", IAC + WONT + b"\x01"),
            (IAC + WILL + b"\x1f", IAC + DONT + b"\x1f"),
        ]:
            session.dataReceived(asked)
            self.assertEqual(transport.value(), answer, asked)
            transport.clear()

    def test_disabling_options_changes_nothing(self):
        """
        A client that turns binary off again gets the protocol's
        acknowledgement and the console keeps working.
        """
        session, transport = self.connected()
        session.dataReceived(IAC + DO + BINARY + IAC + WILL + BINARY)
        transport.clear()
        session.dataReceived(IAC + DONT + BINARY + IAC + WONT + BINARY)
        self.assertEqual(transport.value(), IAC + WONT + BINARY + IAC + DONT + BINARY)
        transport.clear()
        self.type(session, b"/peers\r\n")
        self.assertEqual(transport.value(), b"no known peers\r\n")

    def test_timing_mark_answered_every_time(self):
        """
        Each C{DO TIMING-MARK} gets its own C{WILL TIMING-MARK}.
        """
        session, transport = self.connected()
        session.dataReceived(IAC + DO + TIMING_MARK)
        session.dataReceived(IAC + DO + TIMING_MARK)
        self.assertEqual(transport.value(), (IAC + WILL + TIMING_MARK) * 2)

    def test_output_doubles_iac_only(self):
        """
        Output is written as it is (no CR added before LF), with IAC
        doubled.
        """
        session, transport = self.connected()
        session.write(b"a\xffb\r\n")
        session.writeSequence([b"c\n", b"\xff"])
        self.assertEqual(transport.value(), b"a\xff\xffb\r\nc\n\xff\xff")


class CommandTests(_TelnetTestCase):
    """
    Telnet commands: interrupt, end of file, are-you-there, unknown ones.
    """

    def test_interrupt_clears_line_after_timing_mark(self):
        """
        Ctrl-C in the stock client sends C{IAC IP IAC DO TM}: the half
        typed line is dropped, the timing mark answered and then the
        notice written (the client discards output until the mark).
        """
        session, transport = self.connected()
        self.type(session, b"half a li")
        self.type(session, IAC + IP + IAC + DO + TIMING_MARK)
        self.assertEqual(transport.value(), IAC + WILL + TIMING_MARK + CLEARED)
        transport.clear()
        self.type(session, b"/peers\r\n")
        self.assertEqual(transport.value(), b"no known peers\r\n")
        self.assertEqual(self.node.chat.status()["messages"], 0)

    def test_break_abort_erase_line_clear_too(self):
        """
        BRK, ABORT and EL clear the line like IP; AO changes nothing.
        """
        for command in (BRK, ABORT, EL):
            session, transport = self.connected()
            self.type(session, b"typo" + IAC + command + b"fixed\r\n")
            self.assertEqual(transport.value().split(b"\r\n")[0], CLEARED[:-2], command)
            self.assertIn(b"<alice> fixed\r\n", transport.value())
        session, transport = self.connected()
        self.type(session, b"kept" + IAC + AO + b" whole\r\n")
        self.assertRegex(transport.value(), rb"^\[\d\d:\d\d:\d\d\] <alice> kept whole\r\n$")

    def test_interrupt_keeps_complete_lines_of_paused_console(self):
        """
        While a flooding console is paused its complete lines wait; an
        interrupt drops only the unfinished one after them.
        """
        session, transport = self.connected()
        lines = CONSOLE_LINE_BURST + 10
        self.type(session, b"".join(b"line %d\r\n" % i for i in range(lines)) + b"unfinish")
        self.assertEqual(transport.producerState, "paused")
        self.type(session, IAC + IP)
        self.assertTrue(transport.value().endswith(CLEARED))
        self.type(session, b"ed\r\n")
        for _ in range(200):
            self.net.clock.advance(TURN_BREAK_S)
            self.net.settle()
        self.assertEqual(transport.producerState, "producing")
        # A client that never answered the offers is a script: one message
        # a line, none lost.
        texts = [m.text for m in self.node.chat.history(lines + 1)]
        self.assertEqual(texts, [f"line {i}" for i in range(lines)] + ["ed"])
        self.assertNotIn(b"unfinish", transport.value())

    def test_interrupt_ends_over_long_line(self):
        """
        After an interrupt, what follows the unfinished rest of an
        over-long line is a new line, not more of the line to drop.
        """
        session, transport = self.connected()
        self.type(session, b"x" * (MAX_LINE_BYTES + 10))
        self.type(session, IAC + IP + b"/peers\r\n")
        self.assertEqual(
            transport.value(),
            f"error: line longer than {MAX_LINE_BYTES} bytes; ignored\r\n".encode()
            + CLEARED + b"no known peers\r\n",
        )

    def test_are_you_there(self):
        """
        AYT is answered with a line.
        """
        session, transport = self.connected()
        session.dataReceived(IAC + AYT)
        self.assertEqual(transport.value(), b"*** yes, p2pchat is here\r\n")

    def test_eof_closes_session(self):
        """
        C{IAC EOF} says bye and closes the session; what followed it is
        not read.
        """
        session, transport = self.connected()
        self.type(session, b"/peers\r\n" + IAC + EOF + b"not sent\r\n")
        self.assertEqual(transport.value(), b"no known peers\r\nbye\r\n")
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.node.chat.status()["messages"], 0)

    def test_ctrl_d_on_empty_line_closes_session(self):
        """
        C{^D} at the start of a line (as the stock client sends it for
        Ctrl-D on an empty line) closes the session after the lines before
        it.
        """
        session, transport = self.connected()
        self.type(session, b"\x04")
        self.assertEqual(transport.value(), b"bye\r\n")
        self.assertTrue(transport.disconnecting)
        session, transport = self.connected()
        self.type(session, b"one\n")
        self.type(session, b"two\n\x04three\n")
        self.assertIn(b"bye\r\n", transport.value())
        self.assertTrue(transport.disconnecting)
        self.assertEqual([message.text for message in self.node.chat.history(5)], ["one", "two"])

    def test_ctrl_d_inside_line_is_text(self):
        """
        C{^D} after other text on its line does not close the session.
        """
        session, transport = self.connected()
        self.type(session, b"a\x04b\r\n")
        self.assertIn(b"<alice> a\\x04b\r\n", transport.value())
        self.assertFalse(transport.disconnecting)

    def test_unknown_commands_ignored(self):
        """
        Commands Twisted's parser does not know (SUSP, stray bytes after
        IAC), even split across reads, are ignored and the session works
        on; an escaped IAC is a data byte.
        """
        session, transport = self.connected()
        self.type(session, IAC + SUSP + IAC + b"\x01" + IAC)
        self.type(session, b"\x7f/peers\r\n")
        self.assertEqual(transport.value(), b"no known peers\r\n")
        transport.clear()
        self.type(session, IAC + IAC + b"\r\n")
        self.assertEqual(transport.value(), b"error: line is not valid UTF-8; ignored\r\n")
        self.assertFalse(transport.disconnecting)


class _RecordingClient(TelnetProtocol):
    """
    The far end of a telnet console: Twisted's telnet client protocol,
    willing to use BINARY both ways; records what it is asked and shown.
    """

    def __init__(self):
        self.calls = []
        self.received = b""

    def dataReceived(self, data):
        self.received += data

    def enableLocal(self, option):
        self.calls.append(("enableLocal", option))
        return option == BINARY

    def enableRemote(self, option):
        self.calls.append(("enableRemote", option))
        return option == BINARY


class TwistedClientTests(_TelnetTestCase):
    """
    A session with Twisted's telnet client over an in-memory connection.
    """

    def connect(self):
        client, server, pump = iosim.connectedServerAndClient(
            lambda: TelnetConsoleFactory(_Consoles(self.node)).buildProtocol(None),
            lambda: TelnetTransport(_RecordingClient),
            clock=self.net.clock,
        )
        self.net.pumps.append(pump)
        return client, server

    def test_negotiates_binary_and_round_trips_hebrew(self):
        """
        The client is offered binary output, then asked for binary input,
        and agrees to both; a Hebrew line (with the bytes that broke the
        stock client, D7 9C and D7 9D) comes back intact.
        """
        client, server = self.connect()
        self.assertEqual(client.protocol.calls,
                         [("enableRemote", BINARY), ("enableLocal", BINARY)])
        self.assertIn(b"type /help for commands\n", client.protocol.received)
        client.protocol.received = b""
        client.write(HEBREW.encode("utf-8") + b"\n")
        self.net.settle()
        self.net.clock.advance(PASTE_WINDOW_S)
        self.net.settle()
        self.assertRegex(
            client.protocol.received.decode("utf-8"),
            r"^\[\d\d:\d\d:\d\d\] <alice> " + HEBREW + "\n$",
        )
        self.assertEqual(self.node.chat.history(1)[0].text, HEBREW)

    def test_interrupt_then_line(self):
        """
        An interrupt with a timing mark, as the stock client sends for
        Ctrl-C, then a command: the client is told the line was cleared
        and the command runs.
        """
        client, server = self.connect()
        client.protocol.received = b""
        client.write(b"abandoned")
        client.transport.write(IAC + IP + IAC + DO + TIMING_MARK)
        client.write(b"/peers\n")
        self.net.settle()
        self.assertEqual(client.protocol.received, b"*** line cleared\nno known peers\n")
        self.assertEqual(self.node.chat.status()["messages"], 0)


class RawClientTests(_TelnetTestCase):
    """
    A client that never sends IAC (nc, socat, scripts) is served as the
    plain console serves it.
    """

    def test_replies_byte_for_byte(self):
        """
        After the offer prefix, a raw client gets exactly what the plain
        console writes for the same input, CRLF and LF lines alike.
        """
        typed = (b"/peers\r\n/help\n/bogus\r\n\xfe\n\x0c/peers\r\n/history\n"
                 + b"x" * (MAX_LINE_BYTES + 1) + b"\r\n")
        session, transport = self.server()
        self.type(session, typed)
        plain = ConsoleProtocol(self.net.node("bob").chat)
        plain_transport = StringTransport()
        plain.makeConnection(plain_transport)
        plain.dataReceived(typed)
        self.net.settle()
        telnet_output = transport.value()
        self.assertTrue(telnet_output.startswith(OFFERS + b"p2pchat: you are alice"))
        greeting_end = telnet_output.index(b"\r\n") + 2
        plain_output = plain_transport.value()
        self.assertEqual(
            telnet_output[greeting_end:], plain_output[plain_output.index(b"\r\n") + 2:]
        )


class TransportTests(SynchronousTestCase):
    """
    L{ConsoleTelnetTransport} forwards flow control to the connection.
    """

    def test_producer_calls_and_disconnecting(self):
        """
        Pausing, resuming and stopping reach the connection, and
        C{disconnecting} is the connection's.
        """
        transport = StringTransport()
        session = ConsoleTelnetTransport()
        self.assertFalse(session.disconnecting)
        session.makeConnection(transport)
        session.pauseProducing()
        self.assertEqual(transport.producerState, "paused")
        session.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        session.stopProducing()
        self.assertEqual(transport.producerState, "stopped")
        transport.loseConnection()
        self.assertTrue(session.disconnecting)

    def test_half_close_answers_then_closes(self):
        """
        A client that closes its sending side (C{echo /status | nc -q 1})
        gets what was already answered, then the connection closes: the
        session is half-closeable, and the end of its input asks the
        connection to close once written, instead of Twisted dropping it
        with the answers unwritten.
        """
        from twisted.internet.interfaces import IHalfCloseableProtocol
        from zope.interface.verify import verifyObject

        session = TelnetConsoleFactory(_Consoles(Network(self).node("alice"))).buildProtocol(None)
        transport = StringTransport()
        session.makeConnection(transport)
        self.assertTrue(verifyObject(IHalfCloseableProtocol, session))
        session.dataReceived(b"/status\n")
        session.readConnectionLost()
        self.assertIn(b"messages: ", transport.value())
        self.assertTrue(transport.disconnecting)
