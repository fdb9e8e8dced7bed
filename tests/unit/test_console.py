"""
Tests for L{p2pchat.faces.console}: the command parser and the console protocol.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

import p2pchat
from p2pchat.config import PeerAddress
from p2pchat.faces.console import (
    DEFAULT_HISTORY,
    LINES_PER_TURN,
    MAX_HISTORY,
    MAX_LINE_BYTES,
    PASTE_WINDOW_S,
    TURN_BREAK_S,
    Command,
    CommandError,
    ConsoleProtocol,
    parse_command,
)
from p2pchat.faces.words import COMMANDS, format_clock
from p2pchat.log.entry import MAX_TEXT_BYTES, create_entry
from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from tests.nodes import Network


class ParseCommandTests(SynchronousTestCase):
    """
    L{parse_command} turns console lines into commands.
    """

    def test_plain_line_is_broadcast(self):
        """
        A line not starting with / is a message to everyone.
        """
        self.assertEqual(parse_command("hello there"), Command("say", ("hello there",)))

    def test_double_slash_escapes(self):
        """
        A line starting with // sends the text starting with one /.
        """
        self.assertEqual(parse_command("//shrug"), Command("say", ("/shrug",)))

    def test_commands(self):
        """
        Every documented command parses with its arguments.
        """
        cases = {
            "/msg bob hi there": Command("msg", ("bob", "hi there")),
            "/peers": Command("peers"),
            "/connect 127.0.0.1:9090": Command("connect", (PeerAddress("127.0.0.1", 9090),)),
            "/connect [::1]:9090": Command("connect", (PeerAddress("::1", 9090),)),
            "/history": Command("history", (None, 20)),
            "/history 5": Command("history", (None, 5)),
            "/history #Rust 5": Command("history", ("#rust", 5)),
            "/search needle hay": Command("search", (None, "needle hay")),
            "/search #rust needle": Command("search", ("#rust", "needle")),
            "/join #Rust": Command("join", ("#rust",)),
            "/part": Command("part", (None,)),
            "/part #rust": Command("part", ("#rust",)),
            "/rooms": Command("rooms"),
            "/topic": Command("topic", (None, "")),
            "/topic #rust about rust": Command("topic", ("#rust", "about rust")),
            "/topic about the lobby": Command("topic", (None, "about the lobby")),
            "/names": Command("names", (None,)),
            "/names #rust": Command("names", ("#rust",)),
            "/switch #rust": Command("switch", ("#rust",)),
            "/room #rust": Command("switch", ("#rust",)),
            "/status": Command("status"),
            "/nick zed": Command("nick", ("zed",)),
            "/help": Command("help"),
            "/quit": Command("quit"),
            "/STATUS": Command("status"),
        }
        for line, expected in cases.items():
            self.assertEqual(parse_command(line), expected, line)

    def test_errors_name_problem_and_point_to_help(self):
        """
        An unknown command or a missing or bad argument raises
        L{CommandError} whose message names the problem and mentions /help.
        """
        cases = {
            "/frobnicate": "unknown command /frobnicate",
            "/msg": "/msg needs",
            "/msg bob": "/msg needs",
            "/connect": "/connect needs",
            "/connect nowhere": "/connect",
            "/connect host:99999": "must be an integer 1-65535",
            "/history abc": "/history takes",
            "/history 0": "/history takes",
            "/search": "/search needs",
            "/search #rust": "/search needs",
            "/join": "/join needs",
            "/join rust": "# followed by 1-50 letters",
            "/switch #a #b": "/switch needs",
            "/part #a b": "/part takes",
            "/history #no! 3": "# followed by 1-50 letters",
            "/nick": "/nick needs",
            "/nick two words": "/nick needs",
        }
        for line, fragment in cases.items():
            error = self.assertRaises(CommandError, parse_command, line)
            self.assertIn(fragment, str(error), line)
            self.assertIn("/help", str(error), line)

    def test_history_number_is_ascii_digits(self):
        """
        /history accepts only ASCII digits for 1-MAX_HISTORY (leading zeros
        allowed); other scripts' digits, superscripts, signs, fractions and
        numbers too long for int() are refused with L{CommandError}, never
        another exception.
        """
        self.assertEqual(parse_command("/history 1"), Command("history", (None, 1)))
        self.assertEqual(parse_command("/history 0007"), Command("history", (None, 7)))
        self.assertEqual(
            parse_command(f"/history {MAX_HISTORY}"), Command("history", (None, MAX_HISTORY))
        )
        self.assertEqual(
            parse_command("/history " + "0" * 5000 + "12"), Command("history", (None, 12))
        )
        for argument in [
            "\N{SUPERSCRIPT TWO}",
            "\N{ARABIC-INDIC DIGIT ONE}\N{ARABIC-INDIC DIGIT TWO}",
            "\N{FULLWIDTH DIGIT FIVE}",
            "1\N{SUPERSCRIPT TWO}",
            "\N{DEVANAGARI DIGIT THREE}",
            "-3",
            "+3",
            "1.5",
            "1 2",
            "0",
            "000",
            str(MAX_HISTORY + 1),
            "9" * 5000,
        ]:
            error = self.assertRaises(
                CommandError, parse_command, "/history " + argument
            )
            self.assertEqual(
                str(error), f"/history takes a number 1-{MAX_HISTORY}; try /help"
            )

    @given(
        st.one_of(
            st.text(),
            st.text("0123456789 \t.+-\N{SUPERSCRIPT TWO}\N{ARABIC-INDIC DIGIT TWO}"),
            st.text("0123456789", min_size=4301, max_size=4400),
        )
    )
    @settings(max_examples=300, deadline=None)
    def test_history_argument_parses_or_raises_command_error(self, argument):
        """
        Whatever follows "/history ", L{parse_command} either returns a
        history command for the ASCII number given (or the default when
        there is none) or raises the /history L{CommandError}; it never
        raises anything else.
        """
        try:
            command = parse_command("/history " + argument)
        except CommandError as e:
            if argument.strip().startswith("#"):  # /history #ROOM [N]
                self.assertIn("try /help", str(e))
            else:
                self.assertEqual(
                    str(e), f"/history takes a number 1-{MAX_HISTORY}; try /help"
                )
            return
        self.assertEqual(command.name, "history")
        number = argument.strip()
        if number.startswith("#"):
            room, _, number = number.partition(" ")
            self.assertEqual(command.args[0], room.lower())
            number = number.strip()
        if number:
            self.assertRegex(number, r"\A[0-9]+\Z")
            self.assertEqual(command.args[1:], (int(number.lstrip("0")),))
        else:
            self.assertEqual(command.args[1:], (DEFAULT_HISTORY,))
        self.assertTrue(1 <= command.args[1] <= MAX_HISTORY)

    def test_empty_message_refused(self):
        """
        A message with no text, or only blanks, raises L{CommandError}
        instead of being sent; C{//} alone still sends C{/}.
        """
        for line in ["", " ", "  \t "]:
            error = self.assertRaises(CommandError, parse_command, line)
            self.assertEqual(str(error), "nothing to send; try /help")
        self.assertEqual(parse_command("//"), Command("say", ("/",)))
        self.assertEqual(parse_command("// "), Command("say", ("/ ",)))

    def test_over_long_message(self):
        """
        A message over the text limit is refused, not truncated.
        """
        self.assertRaises(CommandError, parse_command, "x" * (MAX_TEXT_BYTES + 1))
        self.assertEqual(parse_command("x" * MAX_TEXT_BYTES).name, "say")

    @given(st.text())
    @settings(max_examples=300, deadline=None)
    def test_any_text_parses_or_raises_command_error(self, line):
        """
        No input line makes the parser raise anything but L{CommandError}.
        """
        try:
            parse_command(line)
        except CommandError:
            pass


class ConsoleProtocolTests(SynchronousTestCase):
    """
    L{ConsoleProtocol} over a L{StringTransport}, as telnet or nc would use
    it.
    """

    def setUp(self):
        self.net = Network(self, wall_clock=lambda: 1_700_000_000.0)
        self.node = self.net.node("alice")
        self.console, self.transport = self.connect()

    def connect(self, node=None):
        console = ConsoleProtocol((node or self.node).chat)
        transport = StringTransport()
        console.makeConnection(transport)
        transport.clear()
        return console, transport

    def stamp(self):
        """
        How the console shows the time of an entry made now.
        """
        return format_clock(1_700_000_000_000, now=1_700_000_000.0)

    def lines(self, transport=None):
        transport = transport or self.transport
        output = transport.value().decode("utf-8").split("\r\n")
        transport.clear()
        return [line for line in output if line]

    def type(self, data, console=None):
        (console or self.console).dataReceived(data)
        self.net.settle()

    def test_greeting(self):
        """
        A new console session is told who it is and about /help.
        """
        console = ConsoleProtocol(self.node.chat)
        transport = StringTransport()
        console.makeConnection(transport)
        self.assertIn("/help", transport.value().decode())

    def test_broadcast_echo_format(self):
        """
        A plain line is posted and shown back as [HH:MM:SS] <name> text on
        every console, this one included.
        """
        other, other_transport = self.connect()
        self.type(b"hello world\r\n")
        mine = self.lines()
        theirs = self.lines(other_transport)
        self.assertEqual(len(mine), 1)
        self.assertRegex(mine[0], r"^\[\d\d:\d\d:\d\d\] <alice> hello world$")
        self.assertEqual(mine, theirs)

    def test_bare_newlines(self):
        """
        Lines ending in a bare newline work like CRLF lines.
        """
        self.type(b"one\ntwo\n")
        shown = [line.split(" ", 1)[1] for line in self.lines()]
        self.assertEqual(shown, ["<alice> one", "<alice> two"])

    def test_direct_message_format(self):
        """
        A direct message prints as [HH:MM:SS] *name* text at the recipient.
        """
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        bob_console, bob_transport = self.connect(bob)
        self.lines()
        self.type(b"/msg bob psst\r\n")
        self.assertRegex(self.lines(bob_transport)[0], r"^\[\d\d:\d\d:\d\d\] \*alice\* psst$")
        self.assertRegex(self.lines()[0], r"^\[\d\d:\d\d:\d\d\] \*alice\* \(to bob\) psst$")

    def test_control_characters_are_escaped(self):
        """
        A received message with a carriage return or a terminal escape
        sequence has those characters escaped; the lines of a multi-line
        message after the first are marked as its continuation, so none
        can fake a line from someone else.
        """
        mallory = Identity.generate()
        body = {"name": "mallory", "text": "hi\r\n[12:00:00] <bob> send money\x1b[2J"}
        entry = create_entry(mallory, 1, None, 1, 0, "chat", body)
        self.node.feed.rx_entry(entry.to_wire(), None)
        self.net.settle()
        first, second = self.lines()
        self.assertTrue(first.endswith("<mallory> hi\\r"), first)
        self.assertEqual(second, "    | [12:00:00] <bob> send money\\x1b[2J")

    def test_sent_dm_names_a_member_known_by_gossip(self):
        """
        A sent DM's "(to NAME)" uses the name membership gossiped, for a
        member this node never linked to and never heard post.
        """
        bob, carol = self.net.node("bob"), self.net.node("carol")
        self.net.link(self.node, bob)
        self.net.link(bob, carol)
        self.net.tick(times=5)
        self.assertNotIn(carol.node_id, self.node.chat.names.authors)
        self.assertIsNone(self.node.links.link_to(carol.node_id))
        self.lines()
        self.type(f"/msg {carol.node_id[:8]} hi\r\n".encode())
        self.assertRegex(self.lines()[-1], r"\*alice\* \(to carol\) hi$")

    def test_status(self):
        """
        /status prints key: value lines including id, name, the p2pchat
        and protocol versions (right after the name), port, messages,
        peers and digest.
        """
        self.type(b"one\r\n")
        self.lines()
        self.type(b"/status\r\n")
        lines = self.lines()
        self.assertEqual(
            [line.split(": ", 1)[0] for line in lines[:5]],
            ["id", "name", "version", "protocol", "port"],
        )
        status = dict(line.split(": ", 1) for line in lines)
        self.assertEqual(status["version"], p2pchat.__version__)
        self.assertEqual(status["protocol"], str(wire.PROTOCOL_VERSION))
        self.assertEqual(status["id"], self.node.node_id)
        self.assertEqual(status["name"], "alice")
        self.assertEqual(status["port"], "9090")
        self.assertEqual(status["messages"], "1")
        self.assertEqual(status["peers"], "0")
        self.assertRegex(status["digest"], "^[0-9a-f]{64}$")

    def test_history_and_search(self):
        """
        /history N prints the last N messages in order; /search prints the
        matches and a count.
        """
        for text in (b"apple pie", b"banana", b"cherry pie"):
            self.type(text + b"\r\n")
        self.lines()
        self.type(b"/history 2\r\n")
        self.assertEqual([line.split("> ")[1] for line in self.lines()], ["banana", "cherry pie"])
        self.type(b"/search pie\r\n")
        found = self.lines()
        self.assertEqual([line.split("> ")[1] for line in found[:-1]], ["apple pie", "cherry pie"])
        self.assertEqual(found[-1], "2 matching message(s)")

    def test_search_too_many_words(self):
        """
        A /search of more different words than the store takes is one
        clear error line, and the console keeps working.
        """
        self.type(b"apple pie\r\n")
        self.lines()
        words = " ".join(f"w{i}" for i in range(40)).encode()
        self.type(b"/search " + words + b"\r\n")
        self.assertEqual(
            self.lines(), ["error: search has 40 different words; at most 16 are allowed"]
        )
        self.type(b"/search " + b"pie " * 1000 + b"\r\n")
        self.assertEqual(self.lines()[-1], "1 matching message(s)")

    def test_history_empty(self):
        """
        /history on a node with no messages says so; once there is one it
        is listed instead.
        """
        self.type(b"/history\r\n")
        self.assertEqual(self.lines(), ["no messages yet"])
        self.type(b"first\r\n")
        self.lines()
        self.type(b"/history 5\r\n")
        (line,) = self.lines()
        self.assertRegex(line, r"^\[\d\d:\d\d:\d\d\] <alice> first$")

    def test_peers(self):
        """
        /peers lists each member: name, short id, address, state, whether
        this node has a link to it, and when it was last heard from.
        """
        self.type(b"/peers\r\n")
        self.assertEqual(self.lines(), ["no known peers"])
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        self.assertEqual(self.lines(), [f"*** bob ({bob.node_id[:8]}) joined"])
        self.type(b"/peers\r\n")
        self.assertEqual(
            self.lines(),
            [f"bob {bob.node_id[:8]} bob.example:9090 alive connected heard 0s ago"],
        )

    def test_peers_escaped(self):
        """
        /peers escapes a member's name and address, whatever put them in
        the table: no escape code or line break reaches the terminal.
        """
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        self.lines()
        member = self.node.membership.member(bob.node_id)
        member.address, member.name = "x:1\r\nfake 1", "bob\x1b[2J"
        self.patch(self.node.membership, "members", lambda: [member])
        self.type(b"/peers\r\n")
        (line,) = self.lines()
        self.assertTrue(line.startswith("bob\\x1b[2J "), line)
        self.assertIn(" x:1\\r\\nfake 1 ", line)

    def test_connect_delegates(self):
        """
        /connect HOST:PORT asks the node to open a link there.
        """
        self.type(b"/connect example.org:9000\r\n")
        self.assertEqual(self.net.connects, [PeerAddress("example.org", 9000)])
        self.assertEqual(self.lines(), ["connecting to example.org:9000"])

    def test_connect_twice(self):
        """
        /connect to an address the node already links or dials says so.
        """
        self.patch(self.node.chat, "_connect", lambda address: False)
        self.type(b"/connect example.org:9000\r\n")
        self.assertEqual(self.lines(), ["already linked to or dialling example.org:9000"])

    def test_disconnect(self):
        """
        /disconnect HOST:PORT asks the node to stop dialling and close the
        link there, and says whether there was anything to stop.
        """
        self.type(b"/disconnect example.org:9000\r\n")
        self.assertEqual(self.net.disconnects, [PeerAddress("example.org", 9000)])
        self.assertEqual(
            self.lines(), ["disconnected from example.org:9000; it is not dialled again"]
        )
        self.patch(self.node.chat, "_disconnect", lambda address: False)
        self.type(b"/disconnect example.org:9000\r\n/disconnect\r\n")
        self.assertEqual(self.lines(), [
            "not linked to nor dialling example.org:9000; nothing to do",
            "error: /disconnect needs HOST:PORT; try /help",
        ])

    def test_nick(self):
        """
        /nick changes the name used on later messages; every console of
        the node is told, and /nick to the same name says so.
        """
        other, other_transport = self.connect()
        self.type(b"/nick zed\r\nhi\r\n")
        lines = self.lines()
        self.assertEqual(lines[0], "*** alice is now known as zed")
        self.assertIn("<zed> hi", lines[1])
        self.assertEqual(self.lines(other_transport)[0], "*** alice is now known as zed")
        self.type(b"/nick zed\r\n")
        self.assertEqual(self.lines(), ["you are already zed"])

    def test_peer_rename_shown(self):
        """
        A peer's live message under a new name (its entries are signed)
        is announced before it is shown.
        """
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        bob.chat.post("hi")
        self.net.settle()
        bob.chat.set_name("robert")
        bob.chat.post("it is me")
        self.net.settle()
        self.assertEqual(self.lines()[2:], [
            "*** bob is now known as robert",
            f"[{self.stamp()}] <robert> it is me",
        ])

    def test_errors_keep_session(self):
        """
        An unknown command, invalid UTF-8 and an over-long line each get one
        error line, and the session keeps working.
        """
        self.type(b"/bogus\r\n")
        self.type(b"\xff\xfe\r\n")
        self.type(b"y" * (MAX_LINE_BYTES + 10) + b"\r\n")
        self.type(b"/msg nobody hi\r\n")
        errors = self.lines()
        self.assertEqual(len(errors), 4, errors)
        self.assertTrue(all(line.startswith("error: ") for line in errors))
        self.assertFalse(self.transport.disconnecting)
        self.type(b"still here\r\n")
        self.assertIn("<alice> still here", self.lines()[0])
        self.assertEqual(self.node.chat.status()["messages"], 1)

    def test_long_line_in_pieces_drops_only_that_line(self):
        """
        An over-long line that arrives in several pieces gets one error;
        none of it is posted, and the line after it is.
        """
        self.console.dataReceived(b"z" * (MAX_LINE_BYTES - 5))
        self.console.dataReceived(b"z" * 100)
        self.console.dataReceived(b"z" * 5000 + b"\r\nnext line\r\n")
        self.net.settle()
        lines = self.lines()
        self.assertEqual(lines[0], f"error: line longer than {MAX_LINE_BYTES} bytes; ignored")
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("<alice> next line", lines[1])
        self.assertEqual(self.node.chat.status()["messages"], 1)

    def test_lines_after_long_line_in_same_chunk(self):
        """
        The lines that follow an over-long line in the same chunk of data
        are handled at once, in order, without waiting for more data.
        """
        self.console.dataReceived(
            b"A" * (MAX_LINE_BYTES + 808) + b"\n/status\nhello\n"
        )
        self.net.settle()
        lines = self.lines()
        self.assertEqual(
            lines[0], f"error: line longer than {MAX_LINE_BYTES} bytes; ignored"
        )
        status = lines[1:-1]
        self.assertEqual(
            [line.split(": ", 1)[0] for line in status], list(self.node.chat.status())
        )
        self.assertIn("messages: 0", status)
        self.assertRegex(lines[-1], r"^\[\d\d:\d\d:\d\d\] <alice> hello$")
        self.assertEqual(self.node.chat.status()["messages"], 1)

    def test_several_long_lines_in_one_chunk(self):
        """
        Two over-long lines in one chunk get one error each, and the
        commands after them run; an over-long line left unfinished at the
        end of a chunk is dropped up to its newline in the next one (once
        it is two bytes over: one more could be the CR of its CRLF).
        """
        self.type(
            b"A" * (MAX_LINE_BYTES + 1) + b"\r\n"
            + b"B" * (MAX_LINE_BYTES * 2) + b"\r\n/history\r\n"
            + b"C" * (MAX_LINE_BYTES + 2)
        )
        error = f"error: line longer than {MAX_LINE_BYTES} bytes; ignored"
        self.assertEqual(self.lines(), [error, error, "no messages yet", error])
        self.type(b"CCCC\r\nafter\r\n")
        (line,) = self.lines()
        self.assertRegex(line, r"^\[\d\d:\d\d:\d\d\] <alice> after$")
        self.assertEqual(self.node.chat.status()["messages"], 1)

    def test_block_commands(self):
        """
        /block hides a peer's messages here, /blocked lists it, /unblock
        shows them again; a missing name is an error pointing to /help.
        """
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        self.lines()
        self.type(b"/block bob\r\n")
        self.assertEqual(self.lines(), [
            f"blocked bob ({bob.node_id[:8]}); their messages are still relayed to others"])
        bob.chat.post("can you hear me")
        self.net.settle()
        self.assertEqual(self.lines(), [])
        self.type(b"/blocked\r\n")
        self.assertEqual(self.lines(), [f"bob ({bob.node_id[:8]})"])
        self.type(b"/unblock bob\r\n/history\r\n")
        lines = self.lines()
        self.assertEqual(lines[0], f"unblocked bob ({bob.node_id[:8]})")
        self.assertIn("<bob> can you hear me", lines[1])
        self.type(b"/block\r\n")
        self.assertEqual(self.lines(), ["error: /block needs one NAME or short id; try /help"])

    def test_flooding_console_is_paused_alone(self):
        """
        A console typing more lines than its burst allows is paused (its
        later lines wait in its socket, none is lost); another console keeps
        working meanwhile, and the flood resumes once the bucket refills.
        """
        from p2pchat.faces.console import CONSOLE_LINE_BURST
        other, other_transport = self.connect()
        flood = b"".join(b"line %d\r\n" % i for i in range(CONSOLE_LINE_BURST + 10))
        self.console.dataReceived(flood)
        self.assertTrue(self.console.paused)
        self.assertEqual(self.transport.producerState, "paused")
        other.dataReceived(b"/status\r\n")
        self.assertIn("messages: ", other_transport.value().decode())
        for _ in range(200):
            self.net.clock.advance(TURN_BREAK_S)
            self.net.settle()
        # A raw connection sends one message a line, none lost.
        texts = [m.text for m in self.node.chat.history(CONSOLE_LINE_BURST + 10)]
        self.assertEqual(texts, [f"line {i}" for i in range(CONSOLE_LINE_BURST + 10)])

    def test_burst_handled_a_bounded_number_of_lines_a_turn(self):
        """
        A script's burst is handled LINES_PER_TURN lines a reactor turn:
        the console pauses for TURN_BREAK_S between them (the rest waits in
        the line buffer), so one console cannot hold the reactor for a
        whole burst; nothing is lost.
        """
        burst = LINES_PER_TURN * 3 + 7
        self.console.dataReceived(b"".join(b"l%d\n" % i for i in range(burst)))
        self.net.settle()
        self.assertEqual(len(self.node.chat.history(burst)), LINES_PER_TURN)
        self.assertTrue(self.console.paused)
        self.net.clock.advance(TURN_BREAK_S)
        self.net.settle()
        self.assertEqual(len(self.node.chat.history(burst)), 2 * LINES_PER_TURN)
        for _ in range(3):
            self.net.clock.advance(TURN_BREAK_S)
            self.net.settle()
        self.assertEqual([m.text for m in self.node.chat.history(burst)],
                         [f"l{i}" for i in range(burst)])
        self.assertFalse(self.console.paused)

    def test_quit_closes_only_session(self):
        """
        /quit closes this console; the node and other consoles carry on.
        """
        other, other_transport = self.connect()
        self.type(b"/quit\r\n")
        self.assertTrue(self.transport.disconnecting)
        self.console.connectionLost(None)
        other.dataReceived(b"after\r\n")
        self.net.settle()
        self.assertIn("<alice> after", self.lines(other_transport)[0])
        self.assertNotIn(b"after", self.transport.value())

    def test_help_lists_every_command(self):
        """
        /help mentions every console command.
        """
        self.type(b"/help\r\n")
        text = "\n".join(self.lines())
        for command in ("/msg", "/peers", "/connect", "/disconnect", "/history", "/search",
                        "/status", "/block", "/unblock", "/blocked", "/hide", "/show",
                        "/nick", "/help", "/quit"):
            self.assertIn(command, text)

    def test_help_columns_aligned(self):
        """
        /help lists every command in two columns: each description starts
        at the same column, two spaces after the longest usage.
        """
        self.type(b"/help\r\n")
        lines = self.lines()
        rows = [line for line in lines if line.startswith("  ")]
        self.assertEqual(len(rows), len(COMMANDS))
        width = max(len(row.split("  ")[1]) for row in rows)
        self.assertEqual(width, len("/disconnect HOST:PORT"))
        starts = {len(row) - len(row[2 + width:].lstrip()) for row in rows}
        self.assertEqual(starts, {2 + width + 2})
        self.assertIn(
            "  /disconnect HOST:PORT  stop dialling HOST:PORT and close its link", rows
        )

    def test_msg_to_yourself(self):
        """
        A direct message to yourself is sent (only you can read it) and
        shown as such.
        """
        self.type(f"/msg {self.node.node_id} note to self\r\n".encode())
        self.assertEqual(self.lines(), [f"[{self.stamp()}] *alice* (to yourself) note to self"])
        # By a short id too (a name is never one's own: it stays the others').
        self.type(f"/msg {self.node.node_id[:6]} and another\r\n".encode())
        self.assertEqual(self.lines(), [f"[{self.stamp()}] *alice* (to yourself) and another"])
        self.type(b"/msg alice by name\r\n")
        self.assertEqual(self.lines(), ["error: no known peer called alice"])

    def test_block_twice_and_unblock_not_blocked(self):
        """
        /block of someone blocked and /unblock of someone not blocked say
        so and change nothing.
        """
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        self.lines()
        label = f"bob ({bob.node_id[:8]})"
        self.type(b"/unblock bob\r\n/block bob\r\n/block bob\r\n/unblock bob\r\n/unblock bob\r\n")
        self.assertEqual(self.lines(), [
            f"{label} is not blocked; nothing to do",
            f"blocked {label}; their messages are still relayed to others",
            f"{label} is already blocked",
            f"unblocked {label}",
            f"{label} is not blocked; nothing to do",
        ])

    def test_history_shows_the_date_when_not_today(self):
        """
        /history shows HH:MM:SS for today's messages and the date too for
        older ones.
        """
        self.type(b"old news\r\n")
        self.lines()
        self.patch(self.node.chat, "now", lambda: 1_700_000_000.0 + 3 * 86_400)
        self.type(b"/history\r\n")
        (line,) = self.lines()
        self.assertRegex(line, r"^\[2023-11-1\d \d\d:\d\d:\d\d\] <alice> old news$")
        self.assertTrue(line.endswith(f"{self.stamp()}] <alice> old news"))

    def test_paste_sent_as_one_message(self):
        """
        More than PASTE_LINES text lines in one read are sent as one
        multi-line message (blank lines kept inside it), said so, and
        shown with continuation lines; commands in the read still run, in
        order.
        """
        from p2pchat.faces.words import PASTE_LINES
        self.console.join_pastes(True)
        paste = [f"row {i}" for i in range(PASTE_LINES + 2)]
        paste.insert(3, "")
        self.type(("\r\n".join(paste) + "\r\n/status\r\n").encode())
        lines = self.lines()
        self.assertEqual(lines[0], "paste of 8 lines: sending it as one multi-line message")
        messages = self.node.chat.history(10)
        self.assertEqual([m.text for m in messages], ["\n".join(paste)])
        # /status commits what is queued first: the message shows before it.
        self.assertEqual(lines[1:9], [
            f"[{self.stamp()}] <alice> row 0", "    | row 1", "    | row 2", "    | ",
            "    | row 3", "    | row 4", "    | row 5", "    | row 6",
        ])
        self.assertTrue(lines[9].startswith("id: "))

    def test_raw_connection_sends_a_message_a_line(self):
        """
        A console that no telnet client answered (nc, a script, a pipe)
        sends every line of a burst as a message of its own, so a script's
        1,000 lines are 1,000 messages.
        """
        from p2pchat.faces.words import PASTE_LINES
        self.type(b"".join(b"line %d\r\n" % i for i in range(PASTE_LINES * 4)))
        texts = [m.text for m in self.node.chat.history(100)]
        self.assertEqual(texts, [f"line {i}" for i in range(PASTE_LINES * 4)])
        self.assertNotIn("paste of", "\n".join(self.lines()))

    def test_paste_off(self):
        """
        After /paste off every line is a message of its own, pasted or
        not; /paste on joins pastes again.
        """
        from p2pchat.faces.words import PASTE_LINES
        self.console.join_pastes(True)
        self.type(b"/paste off\r\n")
        self.assertEqual(
            self.lines(), ["every line is sent as a message of its own, pasted or not"]
        )
        self.type(b"".join(b"line %d\r\n" % i for i in range(PASTE_LINES + 5)))
        texts = [m.text for m in self.node.chat.history(20)]
        self.assertEqual(texts, [f"line {i}" for i in range(PASTE_LINES + 5)])
        self.type(b"/paste on\r\n/paste\r\n")
        self.assertEqual(self.lines()[-2:], [
            f"a paste of more than {PASTE_LINES} lines is sent as one multi-line message",
            "error: /paste needs on or off; try /help",
        ])

    def test_few_lines_in_one_read_are_separate_messages(self):
        """
        Up to PASTE_LINES lines in one read are sent one by one.
        """
        from p2pchat.faces.words import PASTE_LINES
        self.type(b"".join(b"line %d\r\n" % i for i in range(PASTE_LINES)))
        texts = [m.text for m in self.node.chat.history(10)]
        self.assertEqual(texts, [f"line {i}" for i in range(PASTE_LINES)])

    def test_big_paste_split_at_the_size_limit(self):
        """
        A paste over the size limit is sent as as few messages as fit it.
        """
        line = "x" * 1000
        self.console.join_pastes(True)
        self.type(("\r\n".join([line] * 10) + "\r\n").encode())
        self.net.clock.advance(PASTE_WINDOW_S)
        self.net.settle()
        self.assertEqual(self.lines()[0], "paste of 10 lines: sending it as 3 messages")
        texts = [m.text for m in self.node.chat.history(10)]
        self.assertEqual([t.count("\n") + 1 for t in texts], [4, 4, 2])
        self.assertTrue(all(len(t.encode()) <= MAX_TEXT_BYTES for t in texts))

    def test_membership_notices_in_words(self):
        """
        A member first seen alive joined; one that stops linking seems
        down, then is down; one that leaves left.
        """
        bob = self.net.node("bob")
        server, client = self.net.link(self.node, bob)
        self.assertEqual(self.lines(), [f"*** bob ({bob.node_id[:8]}) joined"])
        self.net.unlink(server, client)
        self.net.tick(seconds=0.2, times=100)
        self.assertEqual(self.lines(), [
            f"*** bob ({bob.node_id[:8]}) seems down", f"*** bob ({bob.node_id[:8]}) is down",
        ])
        carol = self.net.node("carol")
        self.net.link(self.node, carol)
        carol.stop()
        self.net.settle()
        self.assertEqual(self.lines(), [
            f"*** carol ({carol.node_id[:8]}) joined", f"*** carol ({carol.node_id[:8]}) left",
        ])
