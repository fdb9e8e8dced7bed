"""
Tests for L{p2pchat.log.rooms}: room names and the room entries' bodies,
as authored and as received.
"""

import json

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import InvalidEntry, create_entry, decode_entry
from p2pchat.log.rooms import (
    LOBBY,
    MAX_TOPIC_BYTES,
    RoomNameError,
    entry_room,
    is_wire_room,
    normalise_room,
    understood_by,
)
from tests import strategies
from tests.unit.test_entry import resign

ALICE = strategies.IDENTITIES[0]


def author(kind, body, seq=1, prev=None):
    return create_entry(ALICE, seq, prev, 1, 1000, kind, body)


class RoomNameTests(SynchronousTestCase):
    """
    A room name is # and 1-50 letters, digits, '-', '_' or '.', typed in
    any case and sent in lower case only.
    """

    def test_normalise(self):
        """
        Typed names are lowered; the lobby is a name like any other here.
        """
        self.assertEqual(normalise_room("#Rust"), "#rust")
        self.assertEqual(normalise_room("#a-b_c.9"), "#a-b_c.9")
        self.assertEqual(normalise_room("#" + "X" * 50), "#" + "x" * 50)
        self.assertEqual(normalise_room("#LOBBY"), LOBBY)

    def test_bad_names(self):
        """
        No #, nothing after it, 51 characters, spaces, other punctuation
        and non-ASCII letters are refused with a message that says what a
        name is.
        """
        for bad in ("rust", "#", "#" + "x" * 51, "#a b", "#a/b", "#a#", "#é", "#a\n",
                    "##a", None, 3):
            with self.assertRaises(RoomNameError) as caught:
                normalise_room(bad)
            self.assertIn("# followed by 1-50 letters", str(caught.exception))

    def test_wire_form(self):
        """
        On the wire only the lower-case form is a room, and the lobby is
        never named.
        """
        self.assertTrue(is_wire_room("#rust"))
        self.assertFalse(is_wire_room("#Rust"))
        self.assertFalse(is_wire_room(LOBBY))
        self.assertFalse(is_wire_room("rust"))
        self.assertFalse(is_wire_room(["#rust"]))


class RoomEntryTests(SynchronousTestCase):
    """
    The room kinds and room messages are authored and received with the
    same checks.
    """

    def assertRefused(self, kind, body, reason_part):
        """
        C{create_entry} refuses C{body}, and a received entry carrying it
        (validly signed) is refused with the same reason.
        """
        with self.assertRaises(InvalidEntry) as authored:
            author(kind, body)
        self.assertIn(reason_part, str(authored.exception))
        wire = author("chat", {"name": "alice", "text": "x"}).to_wire()
        received = resign(ALICE, dict(wire, kind=kind, body=body))
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(received)
        self.assertEqual(str(caught.exception), str(authored.exception))

    def test_round_trip(self):
        """
        Each room kind, and a chat entry with a room, survives the wire
        with its canonical encoding.
        """
        bodies = [
            ("room.join", {"name": "alice", "room": "#rust"}),
            ("room.part", {"name": "alice", "room": "#rust"}),
            ("room.topic", {"name": "alice", "room": "#rust", "topic": "borrowing"}),
            ("room.topic", {"name": "alice", "room": "#rust", "topic": ""}),
            ("chat", {"name": "alice", "room": "#rust", "text": "hello"}),
        ]
        for kind, body in bodies:
            entry = author(kind, body)
            received = decode_entry(json.loads(json.dumps(entry.to_wire())))
            self.assertEqual(received, entry)

    def test_upper_case_room_refused(self):
        """
        A room name not in lower case is refused, never lowered: it would
        be a second encoding of the same statement.
        """
        self.assertRefused("room.join", {"name": "alice", "room": "#Rust"}, "lower-case")
        self.assertRefused(
            "chat", {"name": "alice", "room": "#RUST", "text": "hi"}, "lower-case"
        )

    def test_lobby_never_named(self):
        """
        #lobby messages have no room field; naming it is refused, and
        the lobby has no join, part or topic entries.
        """
        self.assertRefused(
            "chat", {"name": "alice", "room": LOBBY, "text": "hi"}, "#lobby is never named"
        )
        for kind in ("room.join", "room.part"):
            self.assertRefused(kind, {"name": "alice", "room": LOBBY}, "#lobby")

    def test_bad_shapes(self):
        """
        Missing or extra keys, bad names and bad topics are refused, each
        with its reason.
        """
        self.assertRefused("room.join", {"name": "alice"}, "exactly name and room")
        self.assertRefused(
            "room.part", {"name": "alice", "room": "#a", "x": 1}, "exactly name and room"
        )
        self.assertRefused("room.join", {"name": "alice", "room": "#a b"}, "room is not")
        self.assertRefused("room.join", {"name": "al ice", "room": "#a"}, "name")
        self.assertRefused(
            "room.topic", {"name": "alice", "room": "#a"}, "exactly name, room and topic"
        )
        self.assertRefused(
            "room.topic",
            {"name": "alice", "room": "#a", "topic": "x" * (MAX_TOPIC_BYTES + 1)},
            "at most 390 bytes",
        )
        self.assertRefused(
            "room.topic", {"name": "alice", "room": "#a", "topic": 5}, "at most 390 bytes"
        )
        self.assertRefused(
            "chat", {"name": "alice", "room": "#a", "text": ""}, "chat text is empty"
        )
        self.assertRefused(
            "chat", {"name": "alice", "room": "#a", "x": "y"}, "exactly name and text"
        )

    def test_topic_nfc(self):
        """
        The author normalises a topic to NFC; a received one in another
        form is refused.
        """
        entry = author("room.topic", {"name": "alice", "room": "#a", "topic": "e\u0301"})
        self.assertEqual(entry.body["topic"], "\u00e9")
        wire = resign(ALICE, dict(entry.to_wire(), body=dict(entry.body, topic="e\u0301")))
        with self.assertRaises(InvalidEntry) as caught:
            decode_entry(wire)
        self.assertIn("NFC", str(caught.exception))


class CompatibilityTests(SynchronousTestCase):
    """
    Which room each entry is in, and which entries a protocol-2 peer
    accepts.
    """

    def test_entry_room(self):
        self.assertEqual(entry_room("chat", {"name": "a", "text": "t"}), LOBBY)
        self.assertEqual(entry_room("chat", {"name": "a", "room": "#r", "text": "t"}), "#r")
        self.assertEqual(entry_room("room.part", {"name": "a", "room": "#r"}), "#r")
        self.assertIsNone(entry_room("dm", {"name": "a"}))
        self.assertIsNone(entry_room("cert", {"name": "a"}))

    def test_understood_by(self):
        """
        Protocol 2 takes lobby chat, dm and cert; protocol 3 takes all.
        """
        lobby = {"name": "a", "text": "t"}
        room_chat = {"name": "a", "room": "#r", "text": "t"}
        join = {"name": "a", "room": "#r"}
        self.assertTrue(understood_by(2, "chat", lobby))
        self.assertTrue(understood_by(2, "dm", {"name": "a", "to": "x"}))
        self.assertTrue(understood_by(2, "cert", {"name": "a"}))
        self.assertFalse(understood_by(2, "chat", room_chat))
        self.assertFalse(understood_by(2, "room.join", join))
        for kind, body in (("chat", lobby), ("chat", room_chat), ("room.join", join)):
            self.assertTrue(understood_by(3, kind, body))
