"""
Rooms with real processes (issue 13's acceptance): three nodes; alice and
bob join #a, carol joins #b; each room's messages show only on its
members' consoles (carol joins with --room); bob, offline for a while, comes back and /history #a
shows what he missed; /rooms and /names agree on every node once they
converge; a restart keeps the joined rooms and the current room.

Every wait is for an event, with the generous deadline of
L{tests.processes}; nothing is timed.
"""

import re
import time

from twisted.trial.unittest import SynchronousTestCase

from tests.processes import DEADLINE_S, NodeTestMixin, Timeout

STAMP = rb"\[\d\d:\d\d:\d\d\] "


def until(check, what):
    """
    Call C{check} until it returns something true (it may wait itself,
    as a console command does); raise L{Timeout} past the deadline.

    @return: what C{check} returned.
    """
    deadline = time.monotonic() + DEADLINE_S
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise Timeout(f"never: {what}")


class RoomProcessTests(NodeTestMixin, SynchronousTestCase):
    """
    Three real nodes and their consoles.
    """

    def converge(self, *consoles):
        """
        Wait until every console's node shows the same digest.
        """
        until(lambda: len({console.status()["digest"] for console in consoles}) == 1,
              "the nodes hold the same entries")

    def listing(self, console, command):
        """
        @return: the lines of the reply to C{command}, without the "*"
            that marks the asker's own rooms.
        """
        text = console.reply(command)
        return [re.sub(r"^[* ] ", "", line) for line in text.splitlines()
                if line and not line.startswith("error: ")]

    def test_three_nodes_two_rooms(self):
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        carol = self.start("carol", "--peer", alice.peer_address, "--peer", bob.peer_address,
                           "--room", "#B")
        for node in (bob, carol):
            node.wait_for_log(rb"link up with alice")
        consoles = {name: self.console(node)
                    for name, node in (("alice", alice), ("bob", bob), ("carol", carol))}
        a, b, c = consoles["alice"], consoles["bob"], consoles["carol"]
        a.command("/join #a", rb"lines you type now go to #a")
        b.command("/join #A", rb"lines you type now go to #a")
        c.command("/switch #b", rb"lines you type now go to #b")  # joined by --room
        a.wait_for(STAMP + rb"\*\*\* bob joined #a\r\n")

        a.send("hello room a")
        b.wait_for(STAMP + rb"<alice> hello room a\r\n")
        c.send("hello room b")
        b.send("hello back in a")
        a.wait_for(STAMP + rb"<bob> hello back in a\r\n")
        b.command("/switch #lobby", rb"lines you type now go to #lobby")
        b.send("hello everyone")
        for console in (a, c):
            console.wait_for(STAMP + rb"#lobby <bob> hello everyone\r\n")
        # Everyone holds everything (rooms decide what is shown, not what
        # is stored), so once the digests agree nothing more will arrive.
        self.converge(a, b, c)
        self.assertNotIn(b"room a", c.received)
        self.assertNotIn(b"hello back in a", c.received)
        for console in (a, b):
            self.assertNotIn(b"hello room b", console.received)

        # bob goes offline; alice talks in #a; bob comes back.
        b.close()
        self.assertEqual(bob.stop(), 0)
        a.send("while bob was away")
        a.wait_for(STAMP + rb"<alice> while bob was away\r\n")
        bob.start()
        b = self.console(bob)
        self.addCleanup(b.close)
        until(lambda: "while bob was away" in b.reply("/history #a"), "bob's /history #a")
        joined = b.reply("/rooms")
        self.assertRegex(joined, r"(?m)^\* #a  members 2  messages \d+")
        self.assertRegex(joined, r"(?m)^  #b  members 1  messages 1")

        # After convergence every node lists the same rooms and members.
        consoles["bob"] = b
        self.converge(a, b, c)
        for command in ("/rooms", "/names #a", "/names #b", "/names #lobby"):
            until(
                lambda command=command: len({
                    tuple(self.listing(console, command)) for console in consoles.values()
                }) == 1,
                f"{command} agrees on every node",
            )
        names = self.listing(a, "/names #a")
        self.assertEqual(names[0], "#a: 2 member(s)")
        self.assertEqual([line.split()[0] for line in names[1:]], ["alice", "bob"])
        self.assertTrue(all(line.endswith(" alive") for line in names[1:]), names)

        # A console that attaches is told what arrived since the rooms
        # were last read (when the last console before it closed).
        watcher = self.console(bob)
        self.addCleanup(watcher.close)
        b.close()
        a.send("first while unread")
        a.send("second while unread")
        watcher.wait_for(STAMP + rb"#a <alice> second while unread\r\n")
        late = self.console(bob)
        self.addCleanup(late.close)
        late.wait_for(rb"#a: 2 new\r\n")
        consoles["bob"] = watcher

        # A restart keeps the joined rooms and the current room.
        c.close()
        self.assertEqual(carol.stop(), 0)
        carol.start()
        c = self.console(carol)
        self.addCleanup(c.close)
        c.wait_for(rb"lines you type go to #b\r\n")
        self.assertRegex(c.reply("/rooms"), r"(?m)^\* #b  members 1")
