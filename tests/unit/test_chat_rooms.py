"""
Tests for L{p2pchat.chat.rooms}: the rooms of the chat API, on nodes linked
in memory, author the right entries, show each room's messages to its
members only, agree on every node, and survive a restart.
"""


from twisted.trial.unittest import SynchronousTestCase

from p2pchat.chat import RoomInfo, RoomNameError
from p2pchat.log.entry import InvalidEntry
from p2pchat.log.identity import Identity
from tests.nodes import Network

ALICE, BOB = Identity.generate(), Identity.generate()


class RoomsTests(SynchronousTestCase):
    """
    Three nodes linked in a line (alice - bob - carol) in memory: alice and
    bob join #a, carol #b.
    """

    def setUp(self):
        self.network = Network(self)
        self.alice = self.network.node("alice")
        self.bob = self.network.node("bob")
        self.carol = self.network.node("carol")
        self.network.link(self.alice, self.bob)
        self.network.link(self.bob, self.carol)
        self.alice.chat.rooms.join("#A")
        self.bob.chat.rooms.join("#a")
        self.carol.chat.rooms.join("#b")
        self.network.settle()

    def shown(self, node):
        return [(m.room, m.event, m.text) for m in node.view.messages]

    def test_join_writes_entries(self):
        """
        Joining authors one room.join with the lower-case name (none when
        already in, none for #lobby); the author is in at once.
        """
        rooms = self.alice.chat.rooms
        self.assertIsNone(rooms.join("#a"))
        self.assertIsNone(rooms.join("#LOBBY"))
        self.assertEqual(rooms.joined(), ["#lobby", "#a"])
        joins = [e for e in self.bob.store.room_history("#a", 10)
                 if e.author == self.alice.node_id]
        self.assertEqual([(e.kind, e.body) for e in joins],
                         [("room.join", {"name": "alice", "room": "#a"})])
        self.assertRaises(RoomNameError, rooms.join, "#no space")
        self.assertRaises(RoomNameError, rooms.join, "a")

    def test_messages_stay_in_their_room(self):
        """
        A message to #a reaches alice's and bob's faces, not carol's
        (though carol's node stores and relays it); #b's reaches carol
        only; #lobby reaches everyone.
        """
        for node in (self.alice, self.bob, self.carol):
            node.view.messages.clear()
        self.alice.chat.rooms.post("#a", "in a")
        self.carol.chat.rooms.post("#b", "in b")
        self.bob.chat.rooms.post("#lobby", "to all")
        self.network.settle()
        self.assertEqual(sorted(self.shown(self.alice)), [("#a", "message", "in a"),
                                                          ("#lobby", "message", "to all")])
        self.assertEqual(sorted(self.shown(self.bob)), sorted(self.shown(self.alice)))
        self.assertEqual(sorted(self.shown(self.carol)), [("#b", "message", "in b"),
                                                          ("#lobby", "message", "to all")])
        self.assertEqual(self.carol.store.room_message_counts_of("#a"), 1)
        with self.assertRaises(InvalidEntry) as caught:
            self.carol.chat.rooms.post("#a", "let me in")
        self.assertIn("you are not in #a", str(caught.exception))

    def test_events_shown_to_members(self):
        """
        Joins, parts and topics of #a are shown to its members (and a
        part to its author), never to others.
        """
        for node in (self.alice, self.bob, self.carol):
            node.view.messages.clear()
        self.bob.chat.rooms.set_topic("#a", "all about a")
        self.network.settle()
        self.alice.chat.rooms.part("#a")
        self.network.settle()
        expected = [("#a", "topic", "all about a"), ("#a", "part", "")]
        self.assertEqual(self.shown(self.alice), expected)
        self.assertEqual(self.shown(self.bob), expected)
        self.assertEqual(self.shown(self.carol), [])
        self.assertEqual(self.carol.chat.rooms.topic("#a"), "all about a")

    def test_lists_agree(self):
        """
        After convergence every node lists the same rooms, members,
        message counts and topics, and the same names; only "mine" differs.
        """
        self.bob.chat.rooms.set_topic("#a", "topic of a")
        self.alice.chat.rooms.post("#a", "one")
        self.network.tick(times=30)
        lists = {}
        for node in (self.alice, self.bob, self.carol):
            lists[node.chat.name] = node.chat.rooms.list()
        self.assertEqual(lists["alice"], [
            RoomInfo("#lobby", 3, 0, "", True),
            RoomInfo("#a", 2, 1, "topic of a", True),
            RoomInfo("#b", 1, 0, "", False),
        ])
        strip = [[(r.name, r.members, r.messages, r.topic) for r in rooms]
                 for rooms in lists.values()]
        self.assertEqual(strip[0], strip[1])
        self.assertEqual(strip[0], strip[2])
        self.assertEqual([r.mine for r in lists["carol"]], [True, False, True])
        names = [[(m.name, m.node_id) for m in node.chat.rooms.names("#a")]
                 for node in (self.alice, self.bob, self.carol)]
        self.assertEqual(names[0], sorted([("alice", self.alice.node_id),
                                           ("bob", self.bob.node_id)]))
        self.assertEqual(names[0], names[1])
        self.assertEqual(names[0], names[2])
        self.assertEqual({m.state for m in self.alice.chat.rooms.names("#a")}, {"alive"})

    def test_history_search_unread(self):
        """
        A room's history shows its messages and events only; search finds
        only its messages; unread counts what was stored since it was read.
        """
        self.alice.chat.rooms.post("#a", "rust one")
        self.alice.chat.rooms.post("#lobby", "rust lobby")
        self.network.settle()
        rooms = self.bob.chat.rooms
        self.assertEqual([(m.event, m.text) for m in rooms.history("#a", 10)],
                         [("join", ""), ("join", ""), ("message", "rust one")])
        self.assertEqual([m.text for m in rooms.search("#a", "rust")], ["rust one"])
        self.assertEqual([m.text for m in rooms.search("#lobby", "rust")], ["rust lobby"])
        self.assertEqual([m.text for m in rooms.history("#lobby", 10)], ["rust lobby"])
        self.assertEqual(rooms.unread(), {"#lobby": 1, "#a": 1})
        rooms.mark_read("#a")
        self.alice.chat.rooms.post("#a", "rust two")
        self.network.settle()
        self.assertEqual(rooms.unread(), {"#lobby": 1, "#a": 1})

    def test_restart_keeps_rooms(self):
        """
        A node started again on its store is in the same rooms, with the
        same current room; a current room it left falls back to #lobby.
        """
        self.alice.chat.rooms.join("#c")
        self.alice.chat.rooms.set_current("#c")
        self.network.settle()
        self.alice.stop()
        again = self.network.node("alice", directory=self.alice.directory)
        self.assertEqual(again.chat.rooms.joined(), ["#lobby", "#a", "#c"])
        self.assertEqual(again.chat.rooms.current(), "#c")
        again.chat.rooms.part("#c")
        self.assertEqual(again.chat.rooms.current(), "#lobby")
