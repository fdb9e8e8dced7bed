"""
Tests for L{p2pchat.chat.rooms}: the room directory converges whatever
order the room entries come in, and L{Rooms} authors the right entries
and reads the store by room.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.chat.rooms import RoomDirectory, RoomEvent, RoomInfo, Rooms
from p2pchat.log.entry import InvalidEntry, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import Store

ALICE, BOB = Identity.generate(), Identity.generate()


class Author:
    """
    One identity's feed, stored as it is authored, like the node does.
    """

    def __init__(self, identity, name, store, rooms=None, lamport=1):
        self.identity, self.name, self.store = identity, name, store
        self.rooms = rooms
        self.seq, self.prev, self.lamport = 0, None, lamport
        self.calls = []

    def __call__(self, kind, body):
        self.calls.append((kind, body))
        self.seq += 1
        entry = create_entry(self.identity, self.seq, self.prev, self.lamport, 1000, kind, body)
        self.prev, self.lamport = entry.id, self.lamport + 2
        self.store.add_entries([entry])
        if self.rooms is not None:
            self.rooms.entry_stored(entry)
        return entry


class DirectoryTests(SynchronousTestCase):
    """
    Members and topics are the last word in display order.
    """

    def entries(self):
        store = Store(":memory:")
        store.open()
        self.addCleanup(store.close)
        alice = Author(ALICE, "alice", store)
        bob = Author(BOB, "bob", store, lamport=2)
        return [
            alice("room.join", {"name": "alice", "room": "#a"}),
            bob("room.join", {"name": "bob", "room": "#a"}),
            alice("room.topic", {"name": "alice", "room": "#a", "topic": "first"}),
            bob("room.topic", {"name": "bob", "room": "#a", "topic": "second"}),
            alice("room.part", {"name": "alice", "room": "#a"}),
            bob("room.join", {"name": "bob", "room": "#b"}),
            alice("chat", {"name": "alice", "room": "#c", "text": "hi"}),
            alice("chat", {"name": "alice", "text": "lobby"}),
        ]

    def test_any_order(self):
        """
        Applied in any order, the entries give the same members, topics
        and rooms.
        """
        entries = self.entries()
        chooser = random.Random(5)
        for _ in range(20):
            shuffled = list(entries)
            chooser.shuffle(shuffled)
            directory = RoomDirectory()
            for entry in shuffled:
                directory.apply(entry)
            self.assertEqual(directory.members("#a"), [BOB.node_id])
            self.assertEqual(directory.members("#b"), [BOB.node_id])
            self.assertEqual(directory.topic("#a").body["topic"], "second")
            self.assertEqual(directory.rooms(), ["#a", "#b", "#c", "#lobby"])
            self.assertEqual(directory.rooms_of(ALICE.node_id), [])
            self.assertEqual(directory.rooms_of(BOB.node_id), ["#a", "#b"])

    def test_events(self):
        """
        Each entry is one event; a cert none.
        """
        entries = self.entries()
        directory = RoomDirectory()
        events = [directory.apply(entry) for entry in entries]
        self.assertEqual(
            [(e.kind, e.room, e.text) for e in events],
            [("join", "#a", ""), ("join", "#a", ""), ("topic", "#a", "first"),
             ("topic", "#a", "second"), ("part", "#a", ""), ("join", "#b", ""),
             ("message", "#c", "hi"), ("message", "#lobby", "lobby")],
        )
        cert = create_entry(ALICE, 1, None, 9, 0, "cert", {"name": "a", "cert": "x", "proof": "00"})
        self.assertIsNone(directory.apply(cert))


class RoomsTests(SynchronousTestCase):
    """
    L{Rooms} on a store, authoring through a recording feed.
    """

    def setUp(self):
        self.path = self.mktemp()
        self.store = Store(self.path)
        self.store.open()
        self.addCleanup(self.store.close)
        self.make()

    def make(self):
        self.rooms = Rooms(self.store, ALICE.node_id, None, lambda: "alice")
        self.author = Author(ALICE, "alice", self.store, self.rooms)
        self.rooms._author = self.author
        self.events = []
        self.rooms.subscribe(self.events.append)

    def test_join_part(self):
        """
        Joining authors one room.join (none when already in, none for
        #lobby); parting authors a room.part; parting a room one is not
        in, or #lobby, is refused.
        """
        self.assertEqual(self.rooms.joined(), ["#lobby"])
        self.assertIsNotNone(self.rooms.join("#a"))
        self.assertIsNone(self.rooms.join("#a"))
        self.assertIsNone(self.rooms.join("#lobby"))
        self.assertEqual(self.rooms.joined(), ["#lobby", "#a"])
        self.rooms.part("#a")
        self.assertEqual(self.author.calls, [
            ("room.join", {"name": "alice", "room": "#a"}),
            ("room.part", {"name": "alice", "room": "#a"}),
        ])
        self.assertEqual([e.kind for e in self.events], ["join", "part"])
        for room, reason in (("#a", "you are not in #a"), ("#lobby", "cannot be left")):
            with self.assertRaises(InvalidEntry) as caught:
                self.rooms.part(room)
            self.assertIn(reason, str(caught.exception))

    def test_post_topic_list(self):
        """
        A post to #lobby is plain chat, to a room it names the room; the
        list shows every room with members, messages, topic and mine.
        """
        self.rooms.join("#a")
        self.rooms.post("#lobby", "hello")
        self.rooms.post("#a", "in a")
        self.rooms.set_topic("#a", "about a")
        self.assertEqual(self.author.calls[1:], [
            ("chat", {"name": "alice", "text": "hello"}),
            ("chat", {"name": "alice", "room": "#a", "text": "in a"}),
            ("room.topic", {"name": "alice", "room": "#a", "topic": "about a"}),
        ])
        self.assertEqual(self.rooms.list(3), [
            RoomInfo("#lobby", 3, 1, "", True),
            RoomInfo("#a", 1, 1, "about a", True),
        ])
        self.assertEqual(
            [(e.kind, e.room, e.text) for e in self.events[1:]],
            [("message", "#lobby", "hello"), ("message", "#a", "in a"),
             ("topic", "#a", "about a")],
        )
        self.assertIsInstance(self.events[0], RoomEvent)
        with self.assertRaises(InvalidEntry):
            self.rooms.set_topic("#lobby", "x")
        with self.assertRaises(InvalidEntry):
            self.rooms.post("#a", "")

    def test_history_search_unread(self):
        """
        History and search read the room only; unread counts what came
        since the room was marked read.
        """
        self.rooms.join("#a")
        first = self.rooms.post("#a", "rust one")
        self.rooms.post("#lobby", "rust lobby")
        self.assertEqual(self.rooms.search("#a", "rust"), [first])
        self.assertEqual([e.kind for e in self.rooms.history("#a", 10, ())],
                         ["room.join", "chat"])
        self.assertEqual(self.rooms.unread(), {"#lobby": 1, "#a": 1})
        self.rooms.mark_read("#a")
        self.rooms.post("#a", "rust two")
        self.assertEqual(self.rooms.unread(), {"#lobby": 1, "#a": 1})

    def test_current_and_restart(self):
        """
        The current room and the joined rooms survive a restart (a new
        L{Rooms} on the reopened store); a current room the user left
        falls back to #lobby.
        """
        self.assertEqual(self.rooms.current(), "#lobby")
        self.rooms.join("#a")
        self.rooms.join("#b")
        self.rooms.set_current("#b")
        self.store.close()
        self.store = Store(self.path)
        self.store.open()
        self.addCleanup(self.store.close)
        self.make()
        self.rooms.load()
        self.assertEqual(self.rooms.joined(), ["#lobby", "#a", "#b"])
        self.assertEqual(self.rooms.current(), "#b")
        self.author.seq, self.author.prev = self.store.head(ALICE.node_id)
        self.author.lamport = 10
        self.rooms.part("#b")
        self.assertEqual(self.rooms.current(), "#lobby")
