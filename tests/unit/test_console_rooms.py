"""
Tests for the console's rooms (L{p2pchat.faces.room_console}): two nodes
linked in memory, consoles over L{StringTransport}s.
"""

import re

from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.faces.console import ConsoleProtocol
from p2pchat.faces.words import help_lines
from tests.nodes import Network

STAMP = r"\[\d\d:\d\d:\d\d\] "


class ConsoleRoomTests(SynchronousTestCase):
    """
    alice and bob on linked nodes, each with a console.
    """

    def setUp(self):
        self.net = Network(self)
        self.alice = self.net.node("alice")
        self.bob = self.net.node("bob")
        self.net.link(self.alice, self.bob)
        self.a, self.a_out = self.connect(self.alice)
        self.b, self.b_out = self.connect(self.bob)

    def connect(self, node):
        console = ConsoleProtocol(node.chat)
        transport = StringTransport()
        console.makeConnection(transport)
        transport.clear()
        return console, transport

    def type(self, console, *lines):
        for line in lines:
            console.dataReceived(line.encode() + b"\r\n")
            self.net.settle()

    def lines(self, transport):
        output = transport.value().decode("utf-8").split("\r\n")
        transport.clear()
        return [line for line in output if line]

    def assertLines(self, transport, *patterns):
        lines = self.lines(transport)
        self.assertEqual(len(lines), len(patterns), lines)
        for line, pattern in zip(lines, patterns):
            self.assertRegex(line, "^" + pattern + "$")

    def test_join_and_talk(self):
        """
        /join moves typed lines to the room; members see the room's lines
        plainly when it is their current room and with the room's name
        otherwise; joins are shown as *** NAME joined #ROOM.
        """
        self.type(self.a, "/join #Rust")
        self.assertLines(self.a_out, STAMP + r"\*\*\* alice joined #rust",
                         "lines you type now go to #rust")
        self.type(self.b, "/join #rust")
        self.assertLines(self.a_out, STAMP + r"\*\*\* bob joined #rust")
        self.lines(self.b_out)
        self.type(self.b, "/switch #lobby", "hello lobby")
        self.type(self.a, "hello rust")
        self.assertLines(self.a_out, STAMP + "#lobby <bob> hello lobby",
                         STAMP + "<alice> hello rust")
        self.assertLines(self.b_out, "lines you type now go to #lobby",
                         STAMP + "<bob> hello lobby", STAMP + "#rust <alice> hello rust")

    def test_rooms_stay_apart(self):
        """
        A room's messages reach only its members' consoles.
        """
        self.type(self.a, "/join #a")
        self.type(self.b, "/join #b")
        self.lines(self.a_out), self.lines(self.b_out)
        self.type(self.a, "only for a")
        self.type(self.b, "only for b")
        self.assertLines(self.a_out, STAMP + "<alice> only for a")
        self.assertLines(self.b_out, STAMP + "<bob> only for b")

    def test_part_topic_names_rooms(self):
        """
        /topic sets and shows a topic (shown on join); /names lists the
        members and their state; /rooms lists every room, * marking mine;
        /part leaves and goes back to #lobby.
        """
        self.type(self.a, "/join #a", "/topic borrow checker")
        self.lines(self.a_out)
        self.type(self.b, "/join #a")
        self.assertLines(self.b_out, STAMP + r"\*\*\* bob joined #a",
                         "lines you type now go to #a", "topic of #a: borrow checker")
        self.type(self.b, "/names")
        lines = self.lines(self.b_out)
        self.assertEqual(lines[0], "#a: 2 member(s)")
        self.assertEqual(sorted(re.sub(r"\(\w+\)", "(ID)", line) for line in lines[1:]),
                         ["alice (ID) alive", "bob (ID) alive"])
        self.type(self.b, "/names nope")
        self.assertLines(
            self.b_out,
            r"error: /names takes at most a #ROOM \(room names start with #\); try /help",
        )
        self.type(self.b, "/names #nope")
        self.assertLines(
            self.b_out, r"#nope: nobody has joined it \(/rooms lists the rooms known here\)"
        )
        self.type(self.b, "/rooms")
        self.assertLines(self.b_out, r"\* #lobby  members 2  messages 0",
                         r"\* #a  members 2  messages 0  topic: borrow checker")
        self.lines(self.a_out)
        self.type(self.a, "/part")
        self.assertLines(self.a_out, "you left #a", "lines you type now go to #lobby",
                         STAMP + r"\*\*\* alice left #a")
        self.assertLines(self.b_out, STAMP + r"\*\*\* alice left #a")
        self.type(self.a, "/rooms")
        self.assertLines(self.a_out, r"\* #lobby  members 2  messages 0",
                         r"  #a  members 1  messages 0  topic: borrow checker")

    def test_history_search_per_room(self):
        """
        /history and /search default to the session's current room, or
        take one.
        """
        self.type(self.a, "in the lobby", "/join #a", "rust in a")
        self.lines(self.a_out)
        self.type(self.a, "/history")
        self.assertLines(self.a_out, STAMP + r"\*\*\* alice joined #a",
                         STAMP + "<alice> rust in a")
        self.type(self.a, "/history #lobby 5")
        self.assertLines(self.a_out, STAMP + "#lobby <alice> in the lobby")
        self.type(self.a, "/search rust", "/search #lobby rust")
        self.assertLines(self.a_out, STAMP + "<alice> rust in a", r"1 matching message\(s\)",
                         r"0 matching message\(s\)")

    def test_errors(self):
        """
        Typing to a room one left, switching to a room one is not in, or
        a bad name: one error line each, the session goes on.
        """
        self.type(self.a, "/switch #nowhere", "/part #nowhere", "/join #bad!")
        lines = self.lines(self.a_out)
        self.assertEqual(lines[0], "error: you are not in #nowhere; /join it first")
        self.assertEqual(lines[1], "error: you are not in #nowhere")
        self.assertTrue(lines[2].startswith("error: #bad!: a room name is # followed by"))
        self.type(self.a, "/part #lobby", "/topic #lobby x")
        self.assertEqual(self.lines(self.a_out), [
            "error: #lobby cannot be left: every member is in it",
            "error: #lobby has no topic",
        ])

    def test_unread_on_attach_and_own_current_room(self):
        """
        A console that attaches is told, per joined room, how many
        messages arrived since its rooms were last read, and starts in the
        current room last chosen; each session keeps its own current room.
        """
        self.type(self.a, "/join #a")
        self.type(self.b, "/join #a")
        self.a.connectionLost()
        self.type(self.b, "/switch #a", "one", "two", "/switch #lobby", "three")
        transport = StringTransport()
        third = ConsoleProtocol(self.alice.chat)
        third.makeConnection(transport)
        greeting = self.lines(transport)
        self.assertIn("#lobby: 1 new", greeting)
        self.assertIn("#a: 2 new", greeting)
        self.assertEqual(greeting[-1], "lines you type go to #a")
        other, other_out = self.connect(self.alice)
        self.type(other, "/switch #lobby")
        self.type(third, "still in a")
        self.assertIn("#a <alice> still in a", self.lines(other_out)[-1])

    def test_help_lists_room_commands(self):
        """
        /help names every room command.
        """
        for command in ("/join", "/part", "/rooms", "/topic", "/names", "/switch",
                        "/history [#ROOM] [N]", "/search [#ROOM] TEXT"):
            self.assertTrue(
                any(line.startswith(f"  {command}") for line in help_lines()), command
            )
