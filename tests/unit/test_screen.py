"""
Tests for the terminal chat screen: L{p2pchat.faces.editor},
L{p2pchat.faces.catchup} and L{p2pchat.faces.screen}, driven through
C{twisted.conch.insults}' L{ServerProtocol} over a L{StringTransport} (the
exact control sequences the terminal receives) on nodes linked in memory.
"""

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.faces.catchup import CatchUpGate, summary
from p2pchat.faces.editor import LineEditor, fit, text_width, wrap
from p2pchat.faces.screen import QUIT_QUESTION, SCREEN_HELP, ChatScreen
from p2pchat.faces.words import format_clock
from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from tests.nodes import Network

NOW_S = 1_700_000_000.0
UP, DOWN, LEFT, RIGHT = b"\x1b[A", b"\x1b[B", b"\x1b[D", b"\x1b[C"


class LineEditorTests(SynchronousTestCase):
    """
    L{LineEditor}: editing keys and history, as plain data.
    """

    def typed(self, text):
        editor = LineEditor()
        editor.insert(text)
        return editor

    def test_insert_at_cursor(self):
        editor = self.typed("hllo")
        editor.home()
        editor.right()
        editor.insert("e")
        self.assertEqual((editor.text, editor.cursor), ("hello", 2))

    def test_backspace_and_delete(self):
        editor = self.typed("abcd")
        editor.left()
        editor.backspace()
        self.assertEqual((editor.text, editor.cursor), ("abd", 2))
        editor.delete()
        self.assertEqual((editor.text, editor.cursor), ("ab", 2))
        editor.delete()
        editor.home()
        editor.backspace()
        self.assertEqual((editor.text, editor.cursor), ("ab", 0))

    def test_kills(self):
        editor = self.typed("say hello  there")
        editor.kill_word()
        self.assertEqual(editor.text, "say hello  ")
        editor.kill_word()
        self.assertEqual(editor.text, "say ")
        editor.insert("x y")
        editor.left()
        editor.kill_to_end()
        self.assertEqual(editor.text, "say x ")
        editor.left()
        editor.kill_to_start()
        self.assertEqual((editor.text, editor.cursor), (" ", 0))

    def test_history_up_down_keeps_the_draft(self):
        """
        Up walks back through sent lines, down forward and then back to
        what was being typed.
        """
        editor = LineEditor()
        for line in ("one", "two", "two", "   "):
            editor.insert(line)
            self.assertEqual(editor.submit(), line)
        self.assertEqual(editor.history, ("one", "two"))
        editor.insert("draft")
        editor.up()
        self.assertEqual((editor.text, editor.cursor), ("two", 3))
        editor.up()
        editor.up()
        self.assertEqual(editor.text, "one")
        editor.down()
        self.assertEqual(editor.text, "two")
        editor.down()
        self.assertEqual(editor.text, "draft")
        editor.down()
        self.assertEqual(editor.text, "draft")

    def test_history_is_bounded(self):
        editor = LineEditor(max_history=3)
        for number in range(5):
            editor.insert(str(number))
            editor.submit()
        self.assertEqual(editor.history, ("2", "3", "4"))

    def test_window_follows_the_cursor(self):
        """
        A line wider than the terminal shows the part around the cursor.
        """
        editor = self.typed("abcdefghij")
        self.assertEqual(editor.window(20), ("abcdefghij", 10))
        self.assertEqual(editor.window(5), ("ghij", 4))
        editor.home()
        self.assertEqual(editor.window(5), ("abcde", 0))

    def test_wide_characters(self):
        """
        East Asian wide characters take two cells, combining marks none.
        """
        self.assertEqual(text_width("日本e\u0301"), 5)
        self.assertEqual(fit("日本語", 5), "日本")
        self.assertEqual(wrap("日本語x", 4), ["日本", "語x"])
        self.assertEqual(wrap("", 10), [""])
        editor = self.typed("日本語")
        self.assertEqual(editor.window(5), ("本語", 4))


class CatchUpGateTests(SynchronousTestCase):
    """
    L{CatchUpGate} shows messages at a human pace and summarises bursts.
    """

    def setUp(self):
        self.clock = Clock()
        self.calls = []
        self.gate = CatchUpGate(
            self.clock,
            lambda m: self.calls.append(("show", m)),
            lambda line: self.calls.append(("summary", line)),
            burst=5,
            window_s=1.0,
            quiet_s=2.0,
        )

    def test_few_messages_are_shown_after_the_turn(self):
        self.gate.arrived("a")
        self.gate.arrived("b")
        self.assertEqual(self.calls, [])
        self.clock.advance(0)
        self.assertEqual(self.calls, [("show", "a"), ("show", "b")])
        self.assertIsNone(self.gate.counting)

    def test_burst_is_one_summary(self):
        """
        More than C{burst} messages at once are counted, not shown, until
        none has come for C{quiet_s}; then one summary line.
        """
        for number in range(6):
            self.gate.arrived(number)
        self.clock.advance(0)
        self.assertEqual((self.calls, self.gate.counting), ([], 6))
        self.clock.advance(1.5)
        self.gate.arrived("late")
        self.clock.advance(0)
        self.clock.advance(1.5)
        self.assertEqual((self.calls, self.gate.counting), ([], 7))
        self.clock.advance(0.5)
        self.assertEqual(self.calls, [("summary", summary(7))])
        self.assertIsNone(self.gate.counting)
        self.gate.arrived("after")
        self.clock.advance(0)
        self.assertEqual(self.calls[-1], ("show", "after"))

    def test_burst_over_several_turns(self):
        """
        Messages shown within the window count towards the burst.
        """
        for number in range(4):
            self.gate.arrived(number)
        self.clock.advance(0)
        self.clock.advance(0.5)
        self.gate.arrived(4)
        self.gate.arrived(5)
        self.clock.advance(0)
        self.assertEqual([m for _, m in self.calls], [0, 1, 2, 3])
        self.assertEqual(self.gate.counting, 2)

    def test_one_summary_per_room(self):
        """
        Messages that name their room are summarised per room, in the
        order the rooms first came.
        """

        class InRoom:
            def __init__(self, room):
                self.room = room

        for room in ("#rust", None, "#rust", "#go", None, None):
            self.gate.arrived(InRoom(room))
        self.clock.advance(0)
        self.clock.advance(2)
        self.assertEqual(
            [line for _, line in self.calls],
            [summary(2, "#rust"), summary(3), summary(1, "#go")],
        )
        self.assertEqual(
            summary(2, "#rust"), "*** 2 new messages in #rust \N{EM DASH} /history to read"
        )

    def test_own_messages_always_shown_at_once(self):
        for number in range(6):
            self.gate.arrived(number)
        self.clock.advance(0)
        self.gate.arrived("mine", own=True)
        self.assertEqual(self.calls, [("show", "mine")])

    def test_summary_numbers(self):
        self.assertEqual(summary(7), "*** 7 new messages \N{EM DASH} /history to read")
        self.assertEqual(summary(1), "*** 1 new message \N{EM DASH} /history to read")
        self.assertEqual(summary(5000), "*** 5,000 new messages \N{EM DASH} /history to read")

    def test_stop_cancels(self):
        for number in range(6):
            self.gate.arrived(number)
        self.gate.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class ScreenTests(SynchronousTestCase):
    """
    L{ChatScreen} on an 80x24 terminal: rows 1-21 scroll messages, row 22
    is the warning line, row 23 the status bar, row 24 the input line.
    """

    def setUp(self):
        self.net = Network(self, wall_clock=lambda: NOW_S)
        self.node = self.net.node("alice")
        self.ended = []
        self.terminal = ServerProtocol(
            ChatScreen, self.node.chat, self.net.clock, lambda: self.ended.append(True)
        )
        self.transport = StringTransport()
        self.terminal.makeConnection(self.transport)
        self.screen = self.terminal.terminalProtocol
        self.stamp = format_clock(int(NOW_S * 1000), now=NOW_S)

    def type(self, data):
        self.terminal.dataReceived(data)
        self.net.settle()

    def wait_paste_window(self):
        """
        Let the console's paste window pass: typed lines are sent.
        """
        from p2pchat.faces.console import PASTE_WINDOW_S
        self.net.clock.advance(PASTE_WINDOW_S)
        self.net.settle()

    def output(self):
        value = self.transport.value()
        self.transport.clear()
        return value

    def scrollback(self):
        return [text for text, _ in self.screen._scrollback]

    def test_first_draw(self):
        """
        The screen sets the scroll region above the three bottom rows,
        greets, shows the status bar and the prompt.
        """
        drawn = self.transport.value()
        self.assertTrue(drawn.startswith(b"\x1bc\x1b[;r\x1b[2J\x1b[1;21r"))
        self.assertIn(b"\x1b[23;1H\x1b[2K\x1b[7m alice | 0 peers alive | 0 links ", drawn)
        self.assertIn(b"\x1b[24;1H\x1b[2K> \x1b[24;3H", drawn)
        self.assertEqual(len(self.scrollback()), 1)
        self.assertIn("type /help for commands", self.scrollback()[0])

    def test_message_scrolls_above_the_input_line(self):
        """
        A message from a peer is written at the bottom of the scroll
        region, which scrolls, and the cursor goes back into the input
        line, which keeps what was being typed.
        """
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        self.type(b"hel")
        self.output()
        bob.chat.post("hi alice")
        self.net.settle()
        self.assertEqual(
            self.output(),
            b"\x1b[21;1H\r\n[" + self.stamp.encode() + b"] <bob> hi alice\x1b[24;6H",
        )
        self.assertEqual(self.screen.editor.text, "hel")

    def test_own_message_once(self):
        """
        Enter clears the input line and the message shows once, formatted.
        """
        self.output()
        self.type(b"hello there\r")
        self.wait_paste_window()
        drawn = self.output()
        self.assertEqual(drawn.count(b"hello there"), 2)  # typed, then shown
        self.assertIn(b"\x1b[24;1H\x1b[2K> \x1b[24;3H", drawn)
        self.assertEqual(self.scrollback()[1:], [f"[{self.stamp}] <alice> hello there"])
        self.assertEqual(self.screen.editor.text, "")

    def test_paste_is_one_message(self):
        """
        Many lines arriving in one read of the terminal (a paste) are sent
        as one multi-line message; a command after them still runs, after
        it; lines typed one read at a time stay messages of their own.
        """
        from p2pchat.faces.words import PASTE_LINES
        rows = [f"row {i}" for i in range(PASTE_LINES + 2)]
        self.type("\r".join(rows).encode() + b"\r/blocked\r")
        self.wait_paste_window()
        self.assertEqual([m.text for m in self.node.chat.history(10)], ["\n".join(rows)])
        shown = self.scrollback()
        self.assertIn("nobody is blocked", shown)
        self.assertIn(f"paste of {len(rows)} lines: sending it as one multi-line message", shown)
        for row in rows[:3]:
            self.type(row.encode() + b"\r")
            self.wait_paste_window()
        self.assertEqual([m.text for m in self.node.chat.history(10)][1:], rows[:3])

    def test_history_with_arrow_keys(self):
        self.type(b"/help\r/blocked\r")
        self.output()
        self.type(UP)
        self.assertEqual(self.output(), b"\x1b[24;1H\x1b[2K> /blocked\x1b[24;11H")
        self.type(UP + LEFT + LEFT + b"X")
        self.assertEqual(self.screen.editor.text, "/heXlp")
        self.type(DOWN + DOWN)
        self.assertEqual(self.screen.editor.text, "")
        self.type(UP + b"\r")
        self.assertEqual(self.scrollback()[-1], "nobody is blocked")

    def test_commands_work_as_on_the_line_console(self):
        self.type(b"/status\r")
        self.assertIn("name: alice", self.scrollback())
        self.type(b"/bogus\r")
        self.assertEqual(self.scrollback()[-1], "error: unknown command /bogus; try /help")

    def test_utf8_typed_byte_by_byte(self):
        for byte in "שלום".encode("utf-8"):
            self.type(bytes([byte]))
        self.assertEqual(self.screen.editor.text, "שלום")
        self.type(b"\r")
        self.wait_paste_window()
        self.assertEqual(self.scrollback()[-1], f"[{self.stamp}] <alice> שלום")

    def test_ctrl_d_on_empty_line_ends(self):
        self.type(b"ab" + LEFT + b"\x04")
        self.assertEqual((self.screen.editor.text, self.ended), ("a", []))
        self.type(b"\x15\x04")
        self.assertEqual(self.ended, [True])
        self.assertEqual(self.scrollback()[-1], "bye")

    def test_help_says_what_quit_does_here(self):
        self.type(b"/help\r")
        self.assertTrue(any(line.lstrip().startswith("/quit") for line in self.scrollback()))
        self.assertEqual(self.scrollback()[-1], SCREEN_HELP)

    def test_quit_asks_first(self):
        self.type(b"/quit\r")
        self.assertEqual((self.scrollback()[-1], self.ended), (QUIT_QUESTION, []))
        self.type(b"n")
        self.assertEqual((self.scrollback()[-1], self.ended), ("*** the node keeps running", []))
        self.type(b"/quit\ry")
        self.assertEqual((self.scrollback()[-1], self.ended), ("bye", [True]))

    def test_closed_terminal_ends(self):
        self.terminal.connectionLost(None)
        self.assertEqual(self.ended, [True])
        self.node.chat.post("after")
        self.net.settle()
        self.assertEqual(self.net.clock.getDelayedCalls(), [])

    def test_stop_updates(self):
        """
        When the node stops, the status bar is no longer refreshed.
        """
        self.assertEqual(len(self.net.clock.getDelayedCalls()), 1)
        self.screen.stop_updates()
        self.assertEqual(self.net.clock.getDelayedCalls(), [])

    def test_catch_up_is_one_line(self):
        """
        Messages arriving in a burst (a catch-up) are one summary line;
        the status bar counts them meanwhile.
        """
        bob = self.net.node("bob")
        for number in range(30):
            bob.chat.post(f"old {number}")
        self.net.settle()
        self.net.link(self.node, bob)
        self.net.tick(0.2, times=3)
        self.assertIn("catching up: 30 new", self.screen.status_text())
        self.net.clock.advance(2)
        self.assertEqual(
            [line for line in self.scrollback()
             if ("bob" in line or "***" in line) and not line.endswith(" joined")],
            # Messages name their room now (#lobby for plain chat); bob's
            # joining is a notice of its own, not one of the 30.
            ["*** 30 new messages in #lobby \N{EM DASH} /history to read"],
        )
        self.type(b"/history 30\r")
        self.assertEqual(self.scrollback()[-1], f"[{self.stamp}] <bob> old 29")

    def test_peer_text_is_escaped(self):
        mallory = Identity.generate()
        body = {"name": "mallory", "text": "hi\x1b[2J\x1b]0;owned\x07"}
        self.output()
        self.node.feed.rx_entry(create_entry(mallory, 1, None, 1, 0, "chat", body).to_wire(), None)
        self.net.settle()
        drawn = self.output()
        self.assertNotIn(b"\x1b[2J", drawn)
        self.assertNotIn(b"\x07", drawn)
        self.assertIn(b"hi\\x1b[2J\\x1b]0;owned\\x07", drawn)

    def test_warning_line(self):
        self.output()
        self.screen.warning("disk \x1b[31mnearly full\nTraceback ...")
        self.assertEqual(
            self.output(),
            b"\x1b[22;1H\x1b[2K\x1b[2mdisk \\x1b[31mnearly full\x1b[0m\x1b[24;3H",
        )

    def test_long_lines_wrap(self):
        self.output()
        self.screen.print_line("x" * 100)
        self.assertEqual(
            self.output(), b"\x1b[21;1H\r\n" + b"x" * 80 + b"\r\n" + b"x" * 20 + b"\x1b[24;3H"
        )

    def test_resize_redraws(self):
        self.screen.print_line("kept")
        self.output()
        self.screen.terminalSize(40, 10)
        drawn = self.output()
        self.assertTrue(drawn.startswith(b"\x1b[;r\x1b[2J\x1b[1;7r"))
        self.assertIn(b"\x1b[7;1Hkept", drawn)
        self.assertIn(b"\x1b[10;1H\x1b[2K> \x1b[10;3H", drawn)

    def test_status_bar_counts_peers_and_links(self):
        bob = self.net.node("bob")
        self.net.link(self.node, bob)
        self.net.tick(1.0, times=2)
        self.assertEqual(self.screen.status_text(), " #lobby | 1 peers alive | 1 links")

    def test_status_bar_names_the_current_room(self):
        """
        The status bar names the room typed lines go to, and follows
        /join and /switch at once.
        """
        self.type(b"/join #rust\r")
        self.assertTrue(self.screen.status_text().startswith(" #rust |"))
        self.assertIn(b"\x1b[7m #rust | ", self.output())
        self.type(b"/switch #lobby\r")
        self.assertTrue(self.screen.status_text().startswith(" #lobby |"))
