# -*- test-case-name: tests.unit.test_telnet -*-
"""
The TCP console speaks telnet (RFC 854) around the line console.

People reach the console with the stock C{telnet} client as well as with
C{nc} and C{socat}.  The telnet client sends commands of its own (C{IAC IP}
and C{DO TIMING-MARK} for Ctrl-C) and, unless both sides agree on BINARY
(RFC 856), strips the eighth bit of what is typed, which turns UTF-8 into
control characters.  L{TelnetConsoleFactory} wraps the console's factory:
each connection gets a L{ConsoleTelnetTransport} (Twisted's
L{TelnetTransport}: it parses C{IAC} sequences and negotiates options) with
a L{TelnetConsole} on it, which hands the plain text to the line console
and acts on telnet commands:

  - at connect it offers BINARY both ways (C{IAC WILL BINARY},
    C{IAC DO BINARY}): the stock client only negotiates when the server
    offers.  The offers are followed by C{CR NUL} (NVT's "carriage return,
    no line feed"), so on a terminal the greeting overwrites what C{nc}
    shows of those bytes; a raw client that never answers is not affected
    otherwise (its text arrives as before, C{CR LF} lines included).
  - a client that answers the offer (yes or no) is a telnet client, a
    person at a terminal: from then on a paste of many lines is sent as one
    multi-line message (L{ConsoleProtocol.join_pastes}); a raw client keeps
    one message a line.
  - BINARY and SUPPRESS-GO-AHEAD are agreed to whenever the client asks;
    SGA is not offered, because the stock client then switches to
    character-at-a-time mode, loses its local line editing and sends
    Ctrl-C as a plain byte instead of C{IAC IP}.
  - C{DO TIMING-MARK} is answered C{WILL TIMING-MARK} every time (the
    client discards output until then).
  - C{IP}, C{BRK}, C{ABORT} and C{EL} clear the line being typed and say
    C{*** line cleared}; C{AYT} is answered; C{IAC EOF}, and C{^D} at the
    start of a line, close the session like C{/quit}.
  - Commands Twisted's parser does not know (C{EOF}, C{SUSP}, C{ABORT}, or
    any other byte after C{IAC}) reach L{TelnetConsole.unhandledCommand}
    instead of breaking the connection.
"""

from twisted.conch.telnet import (
    AO,
    AYT,
    BRK,
    DM,
    DO,
    DONT,
    EC,
    EL,
    EOR,
    GA,
    IAC,
    IP,
    NOP,
    SB,
    SGA,
    WILL,
    WONT,
    OptionRefused,
    TelnetProtocol,
    TelnetTransport,
)
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from zope.interface import implementer

BINARY = bytes((0,))  # RFC 856
TIMING_MARK = bytes((6,))  # RFC 860
EOF = bytes((236,))  # RFC 1184 (LINEMODE) command codes
SUSP = bytes((237,))
ABORT = bytes((238,))
EOT = b"\x04"  # ^D: the stock client sends it when ^D is typed on an empty line

# C{CR NUL}: back to the start of the line without a new line (RFC 854).
_OFFERS_END = b"\r\0"
# Bytes after IAC that Twisted's parser understands; anything else would
# make it raise.
_PARSED_AFTER_IAC = frozenset(
    bytes((b,)) for b in EOR + NOP + DM + BRK + IP + AO + AYT + EC + EL + GA + SB
    + WILL + WONT + DO + DONT + IAC
)
_CLEARS_LINE = frozenset((IP, BRK, ABORT, EL))
LINE_CLEARED = "*** line cleared"
HERE = "*** yes, p2pchat is here"
BYE = "bye"


def _ignore(failure) -> None:
    """
    An offer the client refused, or never answered before it went away,
    leaves that option off; nothing else follows from it.
    """


@implementer(IHalfCloseableProtocol)
class ConsoleTelnetTransport(TelnetTransport):
    """
    L{TelnetTransport} for a line console: it also answers TIMING-MARK,
    passes on the commands its parser does not know, and lets the console
    pause reading.

    Output is written as given (lines already end in C{CR LF}); only
    C{IAC} bytes are doubled.
    """

    _after_input = None

    def readConnectionLost(self) -> None:
        """
        The client closed its sending side (C{echo /status | nc -q 1 ...}):
        everything it sent has been handled; close once the answers are
        written (C{loseConnection} flushes first).  Without this, Twisted
        dropped the connection at once with the answers unwritten.
        """
        self.loseConnection()

    def writeConnectionLost(self) -> None:
        self.loseConnection()

    def dataReceived(self, data: bytes) -> None:
        """
        Parse C{data}; a command byte after C{IAC} that
        L{TelnetTransport} does not parse goes to L{commandReceived} (the
        parser is taken out of its escaped state with a C{NOP}).
        """
        self._after_input = []
        try:
            self._parse(data)
        finally:
            self._write_held()
            self._after_input = None

    def _write_held(self) -> None:
        if self._after_input:
            held, self._after_input = self._after_input, []
            for data in held:
                self.write(data)

    def applicationDataReceived(self, data: bytes) -> None:
        self._write_held()
        super().applicationDataReceived(data)

    def writeAfterInput(self, data: bytes) -> None:
        """
        Write C{data} once the commands received with it have been
        answered: after a C{WILL TIMING-MARK}, before more text is read, or
        at the end of the input at hand.  The stock client discards output
        between its C{DO TIMING-MARK} and our answer.
        """
        if self._after_input is None:
            self.write(data)
        else:
            self._after_input.append(data)

    def _parse(self, data: bytes) -> None:
        while data and self.protocol is not None and not self.disconnecting:
            if self.state == "escaped" and data[:1] not in _PARSED_AFTER_IAC:
                command, data = data[:1], data[1:]
                super().dataReceived(NOP)
                self.commandReceived(command, None)
                continue
            cut = data.find(IAC) + 1 or len(data)
            super().dataReceived(data[:cut])
            data = data[cut:]

    def telnet_DO(self, option: bytes) -> None:
        """
        Answer C{DO TIMING-MARK} with C{WILL TIMING-MARK} each time (it is a
        question, not an option that stays on); negotiate anything else.
        """
        if option == TIMING_MARK:
            self.transport.write(IAC + WILL + TIMING_MARK)
            self._write_held()
        else:
            super().telnet_DO(option)

    def write(self, data: bytes) -> None:
        self.transport.write(data.replace(IAC, IAC + IAC))

    def writeSequence(self, seq) -> None:
        self.write(b"".join(seq))

    @property
    def disconnecting(self) -> bool:
        return self.transport is not None and self.transport.disconnecting

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self.transport.stopProducing()


class TelnetConsole(TelnetProtocol):
    """
    The telnet side of one console session: negotiates options, acts on
    telnet commands and feeds the text to C{console}.

    @ivar console: the line console (a L{LineReceiver}); its transport is
        the L{ConsoleTelnetTransport}.
    """

    def __init__(self, console: LineReceiver):
        self.console = console
        self._line_start = True

    def connectionMade(self) -> None:
        # Twisted negotiates one direction of an option at a time: ask the
        # client to send binary once it has answered the first offer.
        self.transport.will(BINARY).addCallbacks(self._ask_binary, self._refused)
        self.transport.write(_OFFERS_END)
        self.console.makeConnection(self.transport)

    def _ask_binary(self, ignored=None) -> None:
        # An answer to the offer (yes or no) comes only from a telnet
        # client: a person at a terminal, whose pastes are joined.  A raw
        # client (nc, a script) never answers and keeps one message a line.
        self.console.join_pastes(True)
        self.transport.do(BINARY).addErrback(_ignore)

    def _refused(self, failure) -> None:
        if failure.check(OptionRefused):
            self._ask_binary()

    def connectionLost(self, reason=None) -> None:
        self.console.connectionLost(reason)

    def dataReceived(self, data: bytes) -> None:
        """
        Pass text on to the console; C{^D} at the start of a line ends the
        session (what came before it is handled first).
        """
        probe = (b"\n" if self._line_start else b"") + data
        end = probe.find(b"\n" + EOT)
        if end < 0:
            self._feed(data)
            return
        self._feed(probe[len(probe) - len(data):end + 1])
        self._close()

    def _feed(self, data: bytes) -> None:
        if data:
            self._line_start = data.endswith(b"\n")
            self.console.dataReceived(data)

    def _say(self, text: str) -> None:
        self.transport.write(text.encode("utf-8") + b"\r\n")

    def _close(self) -> None:
        self._say(BYE)
        self.transport.loseConnection()

    def _clear_line(self) -> None:
        """
        Drop the line being typed (lines already complete but not yet read,
        while the console is paused, are kept) and say so.
        """
        pending = self.console.clearLineBuffer()
        complete = pending[: pending.rfind(self.console.delimiter) + 1]
        if complete:
            self.console.dataReceived(complete)
        self._line_start = True
        self.transport.writeAfterInput(LINE_CLEARED.encode("ascii") + b"\r\n")

    def unhandledCommand(self, command: bytes, argument) -> None:
        if command in _CLEARS_LINE:
            self._clear_line()
        elif command == EOF:
            self._close()
        elif command == AYT:
            self._say(HERE)

    def enableLocal(self, option: bytes) -> bool:
        return option in (BINARY, SGA)

    def enableRemote(self, option: bytes) -> bool:
        return option in (BINARY, SGA)

    def disableLocal(self, option: bytes) -> None:
        """
        Output is the same bytes in either mode.
        """

    def disableRemote(self, option: bytes) -> None:
        """
        Input is read the same way in either mode.
        """


class TelnetConsoleFactory(Factory):
    """
    Wraps a factory of line consoles (L{LineReceiver}s) so that each one
    is served over telnet.
    """

    noisy = False

    def __init__(self, wrapped: Factory):
        self.wrapped = wrapped

    def startFactory(self) -> None:
        self.wrapped.doStart()

    def stopFactory(self) -> None:
        self.wrapped.doStop()

    def buildProtocol(self, addr):
        console = self.wrapped.buildProtocol(addr)
        if console is None:
            return None
        transport = ConsoleTelnetTransport(TelnetConsole, console)
        transport.factory = self
        return transport
