"""
The line console: one L{LineReceiver} that serves telnet/nc over TCP and
the terminal through C{stdio.StandardIO}.

L{parse_command} turns a line into a L{Command} (pure, no I/O);
L{ConsoleProtocol} runs commands against a L{p2pchat.chat.ChatService} and
prints messages as they arrive; it imports only the chat API.
"""

from dataclasses import dataclass
from typing import Callable, List, Optional, Tuple

from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver

from p2pchat.chat import (
    MAX_TEXT_BYTES,
    AddressError,
    AmbiguousPeer,
    ChatService,
    InvalidEntry,
    Message,
    PeerAddress,
    ReadThrottle,
    RoomNameError,
    TokenBucket,
    UnknownPeer,
    describe_convergence,
    nfc,
    parse_peer_address,
    printable,
    short_id,
    validate_name,
)
from p2pchat.faces.lines import strip_leading_controls, without_line_ending
from p2pchat.faces.pastes import (  # noqa: F401 (tests read the window here)
    MAX_HELD_LINES,
    PASTE_WINDOW_S,
    PasteJoining,
)
from p2pchat.faces.room_console import (  # noqa: F401 (limits tests read here)
    MAX_HISTORY,
    RoomCommandError,
    RoomCommands,
    parse_room_words,
)
from p2pchat.faces.words import (  # noqa: F401 (DEFAULT_HISTORY: tests read it here)
    DEFAULT_HISTORY,
    format_message,
    help_lines,
)

MAX_LINE_BYTES = 8192
# Lines handled in one reactor turn before the console pauses for
# TURN_BREAK_S: a 5,000-line script burst made a one-second turn.
LINES_PER_TURN = 200
TURN_BREAK_S = 0.001
# Lines a console may type: far above any person, so only a flood waits.
CONSOLE_LINES_PER_S = 1_000
CONSOLE_LINE_BURST = 10_000

class CommandError(ValueError):
    """
    A console line is not a valid command; C{str(error)} is the message
    to show the user.
    """


@dataclass(frozen=True)
class Command:
    """
    A parsed console line.

    @ivar name: the command (C{say}, C{msg}, C{peers} ...).
    @ivar args: its arguments, already validated.
    """

    name: str
    args: Tuple = ()


def _usage(command: str, form: str) -> CommandError:
    return CommandError(f"{command} needs {form}; try /help")


def parse_command(line: str) -> Command:
    """
    Parse one console line (already decoded, without its line ending).

    @raise CommandError: for an unknown command, a missing or bad argument,
        or a message that is empty, blank or over-long.
    """
    if not line.startswith("/") or line.startswith("//"):
        text = line[1:] if line.startswith("//") else line
        if not text.strip():
            raise CommandError("nothing to send; try /help")
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise CommandError(f"message longer than {MAX_TEXT_BYTES} bytes; not sent")
        return Command("say", (text,))
    word, _, rest = line[1:].partition(" ")
    rest = rest.strip()
    word = word.lower()
    if word in ("peers", "status", "help", "quit", "blocked", "hide", "show", "converged"):
        return Command(word)
    if word == "paste":
        if rest.lower() not in ("on", "off"):
            raise _usage("/paste", "on or off")
        return Command("paste", (rest.lower() == "on",))
    if word in ("block", "unblock"):
        if not rest or " " in rest:
            raise _usage(f"/{word}", "one NAME or short id")
        return Command(word, (rest,))
    if word == "msg":
        target, _, text = rest.partition(" ")
        text = text.strip()
        if not target or not text:
            raise _usage("/msg", "a NAME and a TEXT")
        if len(text.encode("utf-8")) > MAX_TEXT_BYTES:
            raise CommandError(f"message longer than {MAX_TEXT_BYTES} bytes; not sent")
        return Command("msg", (target, text))
    if word in ("connect", "disconnect"):
        if not rest:
            raise _usage(f"/{word}", "HOST:PORT")
        try:
            return Command(word, (parse_peer_address(rest),))
        except AddressError as e:
            raise CommandError(f"/{word}: {e}; try /help") from None
    try:
        parsed = parse_room_words(word, rest)
    except RoomCommandError as e:
        raise CommandError(str(e)) from None
    if parsed is not None:
        return Command(*parsed)
    if word == "nick":
        rest = nfc(rest)
        if not validate_name(rest):
            raise CommandError(
                "/nick needs a NAME of 1-32 printable characters without spaces; try /help"
            )
        return Command("nick", (rest,))
    raise CommandError(f"unknown command /{word[:40]}; try /help")


class ConsoleProtocol(PasteJoining, RoomCommands, LineReceiver):
    """
    One console session: a TCP client or the terminal.
    """

    delimiter = b"\n"
    # The limit counts the text: one more byte for the CR of a CRLF line
    # (lineReceived refuses a longer text).
    MAX_LENGTH = MAX_LINE_BYTES + 1
    log = Logger()

    def __init__(
        self,
        chat: ChatService,
        on_quit: Optional[Callable[[], None]] = None,
        clock=None,
    ):
        self._chat = chat
        self._on_quit = on_quit
        self.clock = clock = clock or chat.clock
        self._bucket = TokenBucket(CONSOLE_LINES_PER_S, CONSOLE_LINE_BURST, clock)
        self._reading = ReadThrottle(self, clock)
        self._discarding = False
        self._rest: Optional[bytes] = None
        # Text lines of the read being handled, sent once it is (see
        # dataReceived); None outside one.
        self._pending: Optional[List[str]] = None
        # A raw connection (nc, a script, a pipe) sends one message a line;
        # a telnet client that answered the console's offers is a person at
        # a terminal, whose pastes are joined (see TelnetConsole).
        self._join_pastes = False
        # Text lines of earlier reads held for PASTE_WINDOW_S while pastes
        # are joined: a terminal's paste arrives in several reads (telnet
        # sends its first line on its own).
        self._held: List[str] = []
        self._held_call = None
        self._turn_lines = 0

    def connectionMade(self) -> None:
        self._chat.subscribe(self)
        self.say(
            f"p2pchat: you are {self._chat.name} ({short_id(self._chat.node_id)}); "
            "type /help for commands"
        )
        self.attach_rooms()

    def connectionLost(self, reason=None) -> None:
        self._send_pending()
        self._chat.unsubscribe(self)
        self.detach_rooms()
        self._reading.cancel()

    def say(self, text: str) -> None:
        """
        Write one line of text to this console.
        """
        if self.transport is not None:
            self.transport.write(text.encode("utf-8") + b"\r\n")

    def message(self, message: Message) -> None:
        """
        Print a message that just arrived (one that catches the node up
        is counted instead: see L{RoomCommands.counted}).
        """
        if not self.counted(message):
            self.say(self.format(message))

    def notice(self, text: str) -> None:
        """
        Print news about the network (a member came, went, failed).
        """
        self.say(f"*** {printable(text)}")

    def alert(self, text: str) -> None:
        """
        Print a problem the node ran into (not caused by this console).
        """
        self.say(f"error: {text}")

    def format(self, message: Message) -> str:
        """
        @return: how this console prints C{message}.
        """
        return format_message(self._chat, message, self._chat.now(), self.room)

    def dataReceived(self, data: bytes) -> None:
        """
        Feed C{data} to L{LineReceiver}, then whatever followed an
        over-long line in it (see L{lineLengthExceeded}), until nothing is
        left; while discarding the rest of an over-long line, drop data up
        to and including the next newline first.

        The text lines of one read are sent once it is handled: one by
        one, or, more than L{PASTE_LINES} of them (a paste), as one
        multi-line message (see L{_send_pending}).
        """
        outermost = self._pending is None
        if outermost:
            self._pending = []
            self._turn_lines = 0
        try:
            self._receive(data)
        finally:
            if outermost:
                if self._join_pastes and self._pending:
                    self._hold()
                else:
                    self._send_pending()
                self._pending = None

    def _receive(self, data: bytes) -> None:
        while True:
            if self._discarding:
                _, newline, data = data.partition(self.delimiter)
                if not newline:
                    return
                self._discarding = False
            super().dataReceived(data)
            if self._rest is None:
                return
            data, self._rest = self._rest, None

    def lineLengthExceeded(self, line: bytes) -> None:
        """
        Refuse an over-long line with one error, drop it up to its end, and
        go on with whatever follows it; the session stays open.

        L{LineReceiver} is still busy when it calls this, so the data after
        the line is kept for L{dataReceived} to feed in once it returns;
        if the line has not ended yet, its remainder is dropped as it
        arrives.
        """
        self._too_long()
        _, newline, rest = line.partition(self.delimiter)
        if newline:
            self._rest = rest
        else:
            self._discarding = True

    def clearLineBuffer(self) -> bytes:
        """
        Drop what was received and not yet read, the rest of an over-long
        line included: what comes next starts a new line.
        """
        self._discarding = False
        return super().clearLineBuffer()

    def _too_long(self) -> None:
        self.say(f"error: line longer than {MAX_LINE_BYTES} bytes; ignored")

    def _throttle(self) -> None:
        """
        Charge one line to this console's token bucket; when it runs dry,
        stop reading from this console only until it has refilled.
        """
        self._reading.hold(self._bucket.charge(1))
        self._turn_lines += 1
        if self._turn_lines >= LINES_PER_TURN:
            # Let the reactor serve everyone else (and send these lines)
            # before the rest of a burst: the remaining lines wait in the
            # line buffer, read again a moment later.
            self._reading.hold(TURN_BREAK_S)

    def lineReceived(self, line: bytes) -> None:
        self._throttle()
        line = without_line_ending(line)
        if len(line) > MAX_LINE_BYTES:
            self._too_long()
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self.say("error: line is not valid UTF-8; ignored")
            return
        text = strip_leading_controls(text)
        if not text.strip():
            if self._pending:
                self._pending.append("")
            return
        try:
            command = parse_command(text)
        except CommandError as e:
            self.say(f"error: {e}")
            return
        if command.name == "say" and self._pending is not None and self._join_pastes:
            self._pending.append(command.args[0])
            return
        self._send_pending()
        self._run(command, text)

    def _run(self, command: Command, text: str) -> None:
        try:
            getattr(self, "do_" + command.name)(*command.args)
        except (UnknownPeer, AmbiguousPeer, InvalidEntry, RoomNameError) as e:
            self.say(f"error: {e}")
        except Exception:
            self.log.failure("console command {line!r} failed", line=text[:80])
            self.say("error: internal error; see the node's log")

    def _say_line(self, text: str) -> None:
        self._run(Command("say", (text,)), text)

    def do_msg(self, target: str, text: str) -> None:
        self._chat.direct(target, text)

    def do_peers(self) -> None:
        peers = self._chat.peers()
        if not peers:
            self.say("no known peers")
        for peer in peers:
            linked = "connected" if peer.linked else "not connected"
            self.say(
                f"{printable(peer.name)} {short_id(peer.node_id)} "
                f"{printable(peer.address or 'via-relay')} {peer.state} {linked} "
                f"heard {peer.heard_s}s ago"
            )

    def do_hide(self) -> None:
        self._chat.set_hidden(True)
        self.say("hidden: this node is no longer advertised; you can still read and post")

    def do_show(self) -> None:
        self._chat.set_hidden(False)
        self.say("shown: this node is advertised again")

    def do_connect(self, address: PeerAddress) -> None:
        if self._chat.connect(address):
            self.say(f"connecting to {address}")
        else:
            self.say(f"already linked to or dialling {address}")

    def do_disconnect(self, address: PeerAddress) -> None:
        if self._chat.disconnect(address):
            self.say(f"disconnected from {address}; it is not dialled again")
        else:
            self.say(f"not linked to nor dialling {address}; nothing to do")

    def do_status(self) -> None:
        for key, value in self._chat.status().items():
            self.say(f"{key}: {value}")

    def do_converged(self) -> None:
        self.say(describe_convergence(self._chat.converged()))

    def do_block(self, who: str) -> None:
        if self._chat.resolve(who) in self._chat.blocked():
            self.say(f"{self._label(self._chat.resolve(who))} is already blocked")
            return
        node_id = self._chat.block(who)
        self.say(f"blocked {self._label(node_id)}; their messages are still relayed to others")

    def do_unblock(self, who: str) -> None:
        if self._chat.resolve(who) not in self._chat.blocked():
            self.say(f"{self._label(self._chat.resolve(who))} is not blocked; nothing to do")
            return
        self.say(f"unblocked {self._label(self._chat.unblock(who))}")

    def do_blocked(self) -> None:
        blocked = self._chat.blocked()
        if not blocked:
            self.say("nobody is blocked")
        for node_id in blocked:
            self.say(self._label(node_id))

    def _label(self, node_id: str) -> str:
        return f"{self._chat.name_of(node_id) or '?'} ({short_id(node_id)})"

    def do_nick(self, name: str) -> None:
        if name == self._chat.name:
            self.say(f"you are already {name}")
            return
        # Every console of this author, this one included, is told
        # "*** OLD is now known as NEW".
        self._chat.set_name(name)

    def do_help(self) -> None:
        for line in help_lines():
            self.say(line)

    def do_quit(self) -> None:
        self.say("bye")
        if self._on_quit is not None:
            self._on_quit()
        else:
            self.transport.loseConnection()
