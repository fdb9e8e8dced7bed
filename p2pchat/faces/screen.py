# -*- test-case-name: tests.unit.test_screen -*-
"""
The terminal chat screen: what C{twistd -n p2pchat} draws when standard
input is a terminal.

Rows, top to bottom::

    messages (a VT100 scroll region: new lines scroll the older ones up)
    the latest warning from the log, dim (blank until there is one)
    the status bar, reverse video: room | peers alive | links | catch-up
    > the input line

L{ChatScreen} is a C{twisted.conch.insults} L{TerminalProtocol}: keys
arrive as C{keystrokeReceived} and edit a L{LineEditor}; Enter hands the
line to a L{ConsoleProtocol}, the same command interpreter telnet clients
use, whose output goes to an in-memory transport (L{_Sink}) and comes back
here as lines to draw above the input line.  Messages reach the screen
through a L{CatchUpGate}, so a catch-up burst is one summary line.  Every
line is made printable (L{p2pchat.safe.printable}) before it is drawn.
"""

import codecs
from collections import deque
from typing import Callable, Deque, Optional, Tuple

from twisted.conch.insults.insults import TerminalProtocol
from twisted.internet.interfaces import IPushProducer, ITransport
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from p2pchat.chat import ChatService, IChatListener, Message, printable
from p2pchat.faces.catchup import CatchUpGate
from p2pchat.faces.console import CommandError, ConsoleProtocol, parse_command
from p2pchat.faces.editor import LineEditor, fit, text_width, wrap
from p2pchat.faces.lines import strip_leading_controls

PROMPT = "> "
SCROLLBACK_LINES = 1000
STATUS_INTERVAL_S = 1.0
MIN_WIDTH, MIN_HEIGHT = 20, 4
# SGR attributes (insults takes them as strings).
NORMAL, DIM, REVERSE = "0", "2", "7"
QUIT_QUESTION = "*** /quit stops this node: press y to stop it, any other key to stay"
SCREEN_HELP = (
    "On this screen /quit and Ctrl-D stop the node (/quit asks first); "
    "Up/Down recall lines sent before"
)
CTRL_C, CTRL_D, CTRL_L = b"\x03", b"\x04", b"\x0c"
_CONTROL_KEYS = {
    b"\x01": "home", b"\x02": "left", b"\x05": "end", b"\x06": "right",
    b"\x08": "backspace", b"\x7f": "backspace", b"\x0b": "kill_to_end",
    b"\x0e": "down", b"\x10": "up", b"\x15": "kill_to_start", b"\x17": "kill_word",
}


@implementer(ITransport, IPushProducer)
class _Sink:
    """
    The console's transport: collects what it writes and hands each
    complete line to the screen; pausing it pauses the terminal's input.
    """

    disconnecting = False

    def __init__(self, screen: "ChatScreen"):
        self._screen = screen
        self._partial = b""

    def write(self, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\r\n")
        for line in lines:
            self._screen.print_line(line.decode("utf-8", "replace"))

    def writeSequence(self, data) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._screen.end()

    def abortConnection(self) -> None:
        self._screen.end()

    def getPeer(self):
        return self._screen.terminal_address()

    def getHost(self):
        return self._screen.terminal_address()

    def pauseProducing(self) -> None:
        self._screen.pause_input(True)

    def resumeProducing(self) -> None:
        self._screen.pause_input(False)

    def stopProducing(self) -> None:
        self._screen.end()


@implementer(IChatListener)
class ChatScreen(TerminalProtocol):
    """
    The chat screen on one terminal.

    @ivar room: what the status bar names first; if unset, the room the
        lines typed on this screen go to (its console's current room).
    """

    def __init__(self, chat: ChatService, clock, on_end: Callable[[], None]):
        """
        @param chat: the chat API.
        @param clock: the reactor's clock (the status bar, the gate).
        @param on_end: stops the node (Ctrl-D, /quit, a closed terminal).
        """
        self._chat = chat
        self._clock = clock
        self._on_end = on_end
        self.width, self.height = 80, 24
        self.room: Optional[str] = None
        self.editor = LineEditor()
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._scrollback: Deque[Tuple[str, str]] = deque(maxlen=SCROLLBACK_LINES)
        self._warning = ""
        self._confirming = False
        self._ended = False
        self._console: Optional[ConsoleProtocol] = None
        self._status_loop: Optional[LoopingCall] = None
        self.gate = CatchUpGate(
            clock, self._show_message, self.print_line,
            busy=lambda: chat.catch_up.showing,
        )

    # Connection

    def connectionMade(self) -> None:
        self.terminal.reset()
        self._draw_all()
        console = ConsoleProtocol(self._chat, on_quit=self.end, clock=self._clock)
        self._console = console
        console.makeConnection(_Sink(self))
        # A person at a terminal: a paste of many lines is one message.
        console.join_pastes(True)
        # The screen shows messages itself (through the gate) and lets the
        # console format them: messages must not reach the console twice.
        self._chat.unsubscribe(console)
        self._chat.subscribe(self)
        self._status_loop = LoopingCall(self._draw_status)
        self._status_loop.clock = self._clock
        # Now (and every interval) with the console's current room.
        self._status_loop.start(STATUS_INTERVAL_S)

    def connectionLost(self, reason=None) -> None:
        """
        The terminal closed (end of input, a hang-up): end the node.
        """
        self._chat.unsubscribe(self)
        if self._console is not None:
            self._console.connectionLost(reason)
            self._console = None
        self.stop_updates()
        self.end()

    def stop_updates(self) -> None:
        """
        Stop refreshing the status bar and sorting messages (the node is
        stopping: its status may no longer be read).
        """
        if self._status_loop is not None and self._status_loop.running:
            self._status_loop.stop()
        self.gate.stop()

    def end(self) -> None:
        """
        Stop the node (once).
        """
        if not self._ended:
            self._ended = True
            self._on_end()

    def terminal_address(self):
        transport = getattr(self.terminal, "transport", None)
        return transport.getPeer() if transport is not None else None

    def pause_input(self, paused: bool) -> None:
        """
        The console reads more slowly (its line budget ran dry): stop or
        start reading the terminal.
        """
        transport = getattr(self.terminal, "transport", None)
        if transport is not None:
            (transport.pauseProducing if paused else transport.resumeProducing)()

    # What the chat tells its listeners

    def message(self, message: Message) -> None:
        """
        A message arrived: through the gate, so a catch-up is one line.
        """
        self.gate.arrived(message, own=message.entry.author == self._chat.node_id)

    def notice(self, text: str) -> None:
        if self._console is not None:
            self._console.notice(text)

    def alert(self, text: str) -> None:
        if self._console is not None:
            self._console.alert(text)

    def _show_message(self, message: Message) -> None:
        if self._console is not None:
            self._console.message(message)

    def warning(self, text: str) -> None:
        """
        Show one warning from the log on the dim line (the newest only).
        """
        self._warning = printable(text.splitlines()[0] if text else "")
        self._draw_warning()
        self._place_cursor()

    # Drawing

    @property
    def _message_rows(self) -> int:
        return self.height - 3

    def terminalSize(self, width: int, height: int) -> None:
        self.width, self.height = max(width, MIN_WIDTH), max(height, MIN_HEIGHT)
        self._draw_all()

    def _draw_all(self) -> None:
        """
        Redraw everything: after a resize, Ctrl-L, or at the start.
        """
        terminal = self.terminal
        terminal.resetScrollRegion()
        terminal.eraseDisplay()
        # DECSTBM counts rows from 1.
        terminal.setScrollRegion(1, self._message_rows)
        rows = []
        for text, attribute in self._scrollback:
            rows.extend((row, attribute) for row in wrap(text, self.width))
        rows = rows[-self._message_rows:]
        for index, (row, attribute) in enumerate(rows):
            terminal.cursorPosition(0, self._message_rows - len(rows) + index)
            self._write(row, attribute)
        self._draw_warning()
        self._draw_status()
        self._draw_input()

    def print_line(self, text: str, attribute: str = NORMAL) -> None:
        """
        Add a line above the input line: the message rows scroll up, the
        input line stays where it is.
        """
        text = printable(text)
        self._scrollback.append((text, attribute))
        terminal = self.terminal
        terminal.cursorPosition(0, self._message_rows - 1)
        for row in wrap(text, self.width):
            # At the bottom of the scroll region a newline scrolls it.
            terminal.write(b"\n")
            self._write(row, attribute)
        self._place_cursor()

    def _write(self, text: str, attribute: str = NORMAL) -> None:
        if attribute != NORMAL:
            self.terminal.selectGraphicRendition(attribute)
        self.terminal.write(text.encode("utf-8"))
        if attribute != NORMAL:
            self.terminal.selectGraphicRendition(NORMAL)

    def _bar_row(self, row: int, text: str, attribute: str) -> None:
        terminal = self.terminal
        terminal.cursorPosition(0, row)
        terminal.eraseLine()
        shown = fit(text, self.width)
        if attribute == REVERSE:
            shown += " " * (self.width - text_width(shown))
        if shown:
            self._write(shown, attribute)

    def _draw_warning(self) -> None:
        self._bar_row(self.height - 3, self._warning, DIM)

    def status_text(self) -> str:
        """
        @return: the status bar: room, peers alive, links, catch-up.
        """
        status = self._chat.status()
        room = self.room or getattr(self._console, "room", None) or str(status.get("name", ""))
        parts = [
            f" {printable(room)}",
            f"{status.get('peers', 0)} peers alive",
            f"{status.get('links', 0)} links",
        ]
        progress = self._chat.catch_up.line()
        if progress is not None:
            parts.append(progress)
        elif self.gate.counting is not None:
            parts.append(f"catching up: {self.gate.counting:,} new")
        return " | ".join(parts)

    def _draw_status(self) -> None:
        self._bar_row(self.height - 2, self.status_text(), REVERSE)
        self._place_cursor()

    def _draw_input(self) -> None:
        shown, _ = self.editor.window(self.width - len(PROMPT))
        terminal = self.terminal
        terminal.cursorPosition(0, self.height - 1)
        terminal.eraseLine()
        terminal.write((PROMPT + printable(shown)).encode("utf-8"))
        self._place_cursor()

    def _place_cursor(self) -> None:
        _, cursor = self.editor.window(self.width - len(PROMPT))
        self.terminal.cursorPosition(len(PROMPT) + cursor, self.height - 1)

    # Keys

    def keystrokeReceived(self, keyID, modifier) -> None:
        if self._confirming:
            self._confirming = False
            if keyID in (b"y", b"Y"):
                self._feed("/quit")
            else:
                self.print_line("*** the node keeps running")
            return
        terminal = self.terminal
        arrows = {
            terminal.LEFT_ARROW: "left", terminal.RIGHT_ARROW: "right",
            terminal.UP_ARROW: "up", terminal.DOWN_ARROW: "down",
            terminal.HOME: "home", terminal.END: "end", terminal.DELETE: "delete",
        }
        if keyID in arrows:
            getattr(self.editor, arrows[keyID])()
        elif not isinstance(keyID, bytes) or modifier is not None:
            return
        elif keyID in (b"\r", b"\n"):
            self._enter()
            return
        elif keyID == CTRL_D:
            if not self.editor.text:
                self.print_line("bye")
                self.end()
                return
            self.editor.delete()
        elif keyID == CTRL_C:
            # Only in raw mode (a terminal in cbreak mode sends SIGINT).
            self.end()
            return
        elif keyID == CTRL_L:
            self._draw_all()
            return
        elif keyID in _CONTROL_KEYS:
            getattr(self.editor, _CONTROL_KEYS[keyID])()
        elif keyID < b" ":
            return
        else:
            text = self._decoder.decode(keyID)
            if not text or not text.isprintable():
                return
            self.editor.insert(text)
        self._draw_input()

    def _enter(self) -> None:
        line = strip_leading_controls(self.editor.submit())
        self._draw_input()
        if not line.strip():
            return
        try:
            command = parse_command(line).name
        except CommandError:
            command = None
        if command == "quit":
            self._confirming = True
            self.print_line(QUIT_QUESTION)
            return
        self._feed(line)
        if command == "help":
            self.print_line(SCREEN_HELP)
        # A command may have changed the current room.
        self._draw_status()

    def _feed(self, line: str) -> None:
        """
        Hand C{line} to the console, which joins the lines of a paste (they
        arrive within its paste window) into one message.
        """
        if self._console is not None:
            self._console.dataReceived(line.encode("utf-8") + b"\n")
