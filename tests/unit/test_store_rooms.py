"""
Tests for the store's rooms (L{p2pchat.log.store.rooms}): per-room history
and search through the room's own rows, #lobby kept apart from the rooms,
room entries, message counts, read positions and settings, and the
upgrade of a version-2 store in place.
"""

import random

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.store import SCHEMA_VERSION, SearchRefused, Store
from tests.unit.test_store import StoreTestsMixin, sql

ALICE, BOB = Identity.generate(), Identity.generate()


class Feed:
    """
    Authors one identity's chain of entries, one Lamport tick each.
    """

    def __init__(self, identity, name, lamport=1):
        self.identity, self.name = identity, name
        self.seq, self.prev, self.lamport = 0, None, lamport

    def add(self, kind, **fields):
        self.seq += 1
        entry = create_entry(
            self.identity, self.seq, self.prev, self.lamport, 1000 + self.seq,
            kind, dict(fields, name=self.name),
        )
        self.prev = entry.id
        self.lamport += 2
        return entry

    def say(self, text, room=None):
        return self.add("chat", text=text) if room is None else self.add(
            "chat", text=text, room=room
        )


class RoomStoreTests(StoreTestsMixin, SynchronousTestCase):
    """
    A store holding #lobby messages, two rooms' messages and room entries,
    and direct messages.
    """

    def setUp(self):
        self.store = self.open_store()
        alice, bob = Feed(ALICE, "alice"), Feed(BOB, "bob", lamport=2)
        self.lobby = [alice.say("hello lobby"), bob.say("lobby rust talk")]
        self.a = [
            alice.add("room.join", room="#a"),
            bob.add("room.join", room="#a"),
            alice.say("rust in a", "#a"),
            bob.add("room.topic", room="#a", topic="all about a"),
            bob.say("more rust in a", "#a"),
        ]
        self.b = [alice.add("room.join", room="#b"), alice.say("rust in b", "#b")]
        self.lobby.append(alice.say("rust back in lobby"))
        self.store.add_entries(self.lobby[:2] + self.a + self.b + self.lobby[2:])

    def test_room_history(self):
        """
        A room's history is its messages and room entries, in display
        order, and nothing of #lobby or other rooms; the limit keeps the
        newest; excluded authors are left out.
        """
        self.assertEqual(self.store.room_history("#a", 50), self.a)
        self.assertEqual(self.store.room_history("#a", 2), self.a[-2:])
        self.assertEqual(self.store.room_history("#b", 50), self.b)
        self.assertEqual(self.store.room_history("#c", 50), [])
        self.assertEqual(
            self.store.room_history("#a", 50, [BOB.node_id]),
            [e for e in self.a if e.author == ALICE.node_id],
        )

    def test_lobby_apart(self):
        """
        #lobby's history and search hold only messages without a room.
        """
        self.assertEqual(self.store.history(50, ALICE.node_id), self.lobby)
        self.assertEqual(self.store.search("rust"), self.lobby[1:])

    def test_room_search(self):
        """
        A room's search finds that room's messages only, and obeys the
        limit; a room with no match, or a text with no word, finds nothing.
        """
        self.assertEqual(self.store.room_search("#a", "rust"), [self.a[2], self.a[4]])
        self.assertEqual(self.store.room_search("#a", "rust", limit=1), [self.a[4]])
        self.assertEqual(self.store.room_search("#a", "more RUST"), [self.a[4]])
        self.assertEqual(self.store.room_search("#b", "rust"), [self.b[1]])
        self.assertEqual(self.store.room_search("#b", "lobby"), [])
        self.assertEqual(self.store.room_search("#a", "!!"), [])

    def test_search_plans_agree(self):
        """
        With many matches the room's index is probed newest first; the
        answer is the one looking up every match gives.
        """
        carol = Feed(Identity.generate(), "carol")
        many = [carol.say(f"common word {i}", "#big") for i in range(60)]
        many += [carol.say(f"other {i}", "#other") for i in range(30)]
        self.store.add_entries(many)
        self.assertEqual(self.store.room_search("#big", "common", limit=5), many[55:60])
        self.assertEqual(self.store.room_search("#big", "common 7"), [many[7]])
        self.assertEqual(self.store.room_search("#other", "common"), [])

    def test_search_budget(self):
        """
        A room search past the store's time budget is refused as too broad.
        """
        now = [0.0]

        def clock():
            now[0] += 0.05  # every look at the clock: 50 ms later
            return now[0]

        store = Store(self.mktemp(), clock=clock, search_budget_s=0.2)
        store.open()
        self.addCleanup(store.close)
        carol = Feed(Identity.generate(), "carol")
        entries = [carol.say(f"common word {i}", "#big") for i in range(1000)]
        store.add_entries(entries)
        with self.assertRaises(SearchRefused) as caught:
            store.room_search("#big", "common word")
        self.assertIn("search too broad", str(caught.exception))
        store._rooms._clock = lambda: 0.0
        self.assertEqual(store.room_search("#big", "common word", limit=3), entries[-3:])

    def test_members_topics_counts(self):
        """
        Members are the authors whose last word is a join; the topic is
        the last set; message counts per room, #lobby too.
        """
        self.assertEqual(self.store.room_members("#a"), sorted([ALICE.node_id, BOB.node_id]))
        self.assertEqual(self.store.room_members("#b"), [ALICE.node_id])
        self.assertTrue(self.store.room_is_member("#a", BOB.node_id))
        self.assertFalse(self.store.room_is_member("#c", BOB.node_id))
        self.assertEqual(self.store.rooms_of(ALICE.node_id), ["#a", "#b"])
        self.assertEqual(self.store.room_topic("#a"), self.a[3])
        self.assertIsNone(self.store.room_topic("#b"))
        counts = {room: self.store.room_message_counts_of(room)
                  for room in ("#lobby", "#a", "#b", "#c")}
        self.assertEqual(counts, {"#lobby": 3, "#a": 2, "#b": 1, "#c": 0})
        self.assertEqual(self.store.busiest_rooms(5), ["#a", "#b"])
        self.assertEqual(self.store.busiest_rooms(1), ["#a"])

    def test_any_order(self):
        """
        Stored in any order and batching, the same room entries give the
        same members and topics: the last word in display order wins.
        """
        alice, bob = Feed(ALICE, "alice", lamport=100), Feed(BOB, "bob", lamport=101)
        entries = [
            alice.add("room.join", room="#x"),
            bob.add("room.join", room="#x"),
            alice.add("room.topic", room="#x", topic="first"),
            bob.add("room.topic", room="#x", topic="second"),
            alice.add("room.part", room="#x"),
            bob.add("room.join", room="#y"),
            bob.add("room.part", room="#y"),
            bob.add("room.join", room="#y"),
        ]
        chooser = random.Random(5)
        for _ in range(10):
            shuffled = list(entries)
            chooser.shuffle(shuffled)
            store = self.open_store()
            cut = chooser.randrange(len(shuffled))
            store.add_entries(shuffled[:cut])
            for entry in shuffled[cut:]:
                store.add_entries([entry])
            self.assertEqual(store.room_members("#x"), [BOB.node_id])
            self.assertEqual(store.room_members("#y"), [BOB.node_id])
            self.assertEqual(store.room_topic("#x").body["topic"], "second")
            self.assertEqual(store.rooms_of(ALICE.node_id), [])
            store.close()

    def test_room_history_by_index(self):
        """
        A room's history reads that room's index rows only, in display
        order: no scan of the entries and no sort.
        """
        statements = []
        sql(self.store).set_trace_callback(statements.append)
        try:
            self.store.room_history("#a", 20)
        finally:
            sql(self.store).set_trace_callback(None)
        plan = [row[-1] for row in sql(self.store).execute("EXPLAIN QUERY PLAN " + statements[0])]
        self.assertEqual(plan, ["SEARCH entries USING INDEX entries_room (room=?)"])


class LocalStateTests(StoreTestsMixin, SynchronousTestCase):
    """
    Read positions and settings are kept in the store's file.
    """

    def test_unread(self):
        """
        A room's unread count is its messages stored since it was marked
        read (all of them before); #lobby counts messages without a room.
        """
        path = self.mktemp()
        store = self.open_store(path)
        alice = Feed(ALICE, "alice")
        store.add_entries([alice.say("one", "#a"), alice.say("two", "#a"), alice.say("hi")])
        self.assertEqual((store.unread("#a"), store.unread("#lobby")), (2, 1))
        store.mark_read("#a")
        store.add_entries([alice.add("room.join", room="#a"), alice.say("three", "#a")])
        self.assertEqual((store.unread("#a"), store.unread("#lobby")), (1, 1))
        store.close()
        again = self.open_store(path)
        self.assertEqual(again.unread("#a"), 1)
        again.mark_read("#lobby")
        self.assertEqual(again.unread("#lobby"), 0)

    def test_settings(self):
        """
        A setting is None until set; the last value set is kept across
        a reopen.
        """
        path = self.mktemp()
        store = self.open_store(path)
        self.assertIsNone(store.setting("room"))
        store.set_setting("room", "#a")
        store.set_setting("room", "#b")
        store.close()
        self.assertEqual(self.open_store(path).setting("room"), "#b")


class UpgradeTests(StoreTestsMixin, SynchronousTestCase):
    """
    A store written by schema version 2 is upgraded in place on open.
    """

    def test_from_version_2(self):
        """
        Reopened, a version-2 store (no room column, no room tables, the
        chat index of version 2) holds the same history and search, and
        then stores and finds room entries.
        """
        path = self.mktemp()
        store = self.open_store(path)
        alice = Feed(ALICE, "alice")
        lobby = [alice.say("hello"), alice.say("rust later")]
        store.add_entries(lobby)
        db = sql(store)
        for name in ("entries_room", "entries_lobby", "room_members_author"):
            db.execute(f"DROP INDEX {name}")
        for name in ("room_fts", "room_counts", "room_members", "room_topics", "room_reads",
                     "settings"):
            db.execute(f"DROP TABLE {name}")
        db.execute("ALTER TABLE entries DROP COLUMN room")
        db.execute(
            "CREATE INDEX entries_chat ON entries (lamport, author, seq) WHERE kind = 'chat'"
        )
        db.execute("PRAGMA user_version=2")
        store.close()
        again = self.open_store(path)
        db = sql(again)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone()[0], SCHEMA_VERSION)
        indexes = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
        self.assertNotIn("entries_chat", indexes)
        self.assertTrue({"entries_room", "entries_lobby", "room_fts"} <= indexes)
        self.assertEqual(again.history(10, ALICE.node_id), lobby)
        self.assertEqual(again.search("rust"), lobby[1:])
        self.assertEqual(again.room_message_counts_of("#lobby"), 2)
        in_room = [alice.add("room.join", room="#a"), alice.say("rust now", "#a")]
        again.add_entries(in_room)
        self.assertEqual(again.room_history("#a", 10), in_room)
        self.assertEqual(again.room_search("#a", "rust"), in_room[1:])
        self.assertEqual(again.room_members("#a"), [ALICE.node_id])
        self.assertEqual(again.history(10, ALICE.node_id), lobby)
