"""
Tests for L{p2pchat.mesh.wire}: parsing and encoding of single frames.
"""

import json

from hypothesis import given, settings
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh import wire
from p2pchat.mesh.wire import MAX_LINE_BYTES, FrameError, encode_frame, parse_frame
from tests import strategies

NODE_ID = "ab" * 32


def line(value):
    """
    @return: C{value} as one line of UTF-8 JSON.
    """
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


class AcceptTests(SynchronousTestCase):
    """
    L{parse_frame} accepts every frame the protocol documents.
    """

    def test_hello(self):
        """
        A hello with version, id, name and an address (or null) parses.
        """
        frame = wire.hello(NODE_ID, "alice", "127.0.0.1:9090")
        self.assertEqual(parse_frame(line(frame)), frame)
        frame = wire.hello(NODE_ID, "\u00e9lo\u00efse", None)
        self.assertEqual(parse_frame(line(frame)), frame)

    def test_entry(self):
        """
        An entry frame carrying an object parses (the entry inside is not
        verified here).
        """
        frame = wire.entry_frame({"anything": 1})
        self.assertEqual(parse_frame(line(frame)), frame)

    def test_error(self):
        """
        An error frame with a string reason parses.
        """
        frame = wire.error("too slow")
        self.assertEqual(parse_frame(line(frame)), frame)

    def test_simple_frames(self):
        """
        ping, pong and bye need nothing but their type.
        """
        for frame_type in ("ping", "pong", "bye"):
            self.assertEqual(
                parse_frame(line({"type": frame_type})), {"type": frame_type}
            )

    def test_unknown_fields_ignored(self):
        """
        Extra fields in a known frame are kept and do not make it invalid
        (so later versions can add fields).
        """
        frame = {"type": "ping", "nonce": 7}
        self.assertEqual(parse_frame(line(frame)), frame)

    def test_longest_line(self):
        """
        A line of exactly L{MAX_LINE_BYTES} bytes is accepted.
        """
        head = b'{"type":"error","reason":"'
        tail = b'"}'
        data = head + b"x" * (MAX_LINE_BYTES - len(head) - len(tail)) + tail
        self.assertEqual(len(data), MAX_LINE_BYTES)
        self.assertEqual(parse_frame(data)["type"], "error")


class RejectTests(SynchronousTestCase):
    """
    L{parse_frame} rejects anything that is not a valid frame, with
    L{FrameError} and a reason.
    """

    def assertRejected(self, data, reason_part):
        with self.assertRaises(FrameError) as caught:
            parse_frame(data)
        self.assertIn(reason_part, str(caught.exception))

    def test_not_utf8(self):
        """
        Bytes that are not UTF-8 are rejected.
        """
        self.assertRejected(b'{"type":"ping","x":"\xff"}', "UTF-8")
        self.assertRejected(b'{"type":"ping","x":"\xed\xa0\x80"}', "UTF-8")

    def test_invalid_json(self):
        """
        Text that is not JSON is rejected.
        """
        for data in (b"{", b"hello", b'{"type":"ping",}', b"", b"[" * 50000):
            self.assertRejected(data, "JSON")

    def test_json_constants(self):
        """
        NaN, Infinity and -Infinity (accepted by Python, not by JSON) are
        rejected.
        """
        for constant in (b"NaN", b"Infinity", b"-Infinity"):
            self.assertRejected(b'{"type":"ping","x":' + constant + b"}", "constant")

    def test_not_an_object(self):
        """
        JSON values other than objects are rejected.
        """
        for data in (b"[]", b'"ping"', b"1", b"null", b'[{"type":"ping"}]'):
            self.assertRejected(data, "not a JSON object")

    def test_type(self):
        """
        A frame needs a C{type} that is a string naming a known frame.
        """
        self.assertRejected(b"{}", "no string type")
        self.assertRejected(b'{"type":1}', "no string type")
        self.assertRejected(b'{"type":null}', "no string type")
        self.assertRejected(b'{"type":["ping"]}', "no string type")
        self.assertRejected(b'{"type":"pang"}', "unknown frame type")
        self.assertRejected(b'{"type":"PING"}', "unknown frame type")

    def test_long_unknown_type_truncated(self):
        """
        The reason for an unknown type quotes at most 40 characters of it.
        """
        with self.assertRaises(FrameError) as caught:
            parse_frame(line({"type": "x" * 1000}))
        self.assertLess(len(str(caught.exception)), 100)

    def test_hello_version(self):
        """
        hello.version must be an integer (not a bool, float or string).
        """
        for version in ("1", 1.0, True, None):
            frame = dict(wire.hello(NODE_ID, "alice", None), version=version)
            self.assertRejected(line(frame), "version")
        frame = wire.hello(NODE_ID, "alice", None)
        del frame["version"]
        self.assertRejected(line(frame), "version")

    def test_hello_id(self):
        """
        hello.id must be a node id.
        """
        for node_id in (NODE_ID.upper(), NODE_ID[:-1], 5, None):
            self.assertRejected(line(wire.hello(node_id, "alice", None)), "id")

    def test_hello_name(self):
        """
        hello.name must be a valid display name.
        """
        for name in ("al ice", "", "x" * 33, None, 3):
            self.assertRejected(line(wire.hello(NODE_ID, name, None)), "name")

    def test_hello_addr(self):
        """
        hello.addr must be null or exactly HOST:PORT: a host name, an IPv4
        address or a bracketed IPv6 address, a port 1-65535 without leading
        zeros; nothing else (spaces could fake columns in /peers).
        """
        for address in ("", "x" * 301, 9090, ["h", 1], "x" * 300, "alice",
                        "alice:0", "alice:65536", "alice:09090", "alice:+1",
                        "al ice:9090", "alice:9090 up 1s", "alice:9090\x1b[2J",
                        "::1:9090", "[::1]", "[alice]:9090", "1.2.3.999:9090",
                        "user@alice:9090", "alice:9090/x", "-alice:9090",
                        "\u00e9t\u00e9:9090", "alice.:9090"):
            self.assertRejected(line(wire.hello(NODE_ID, "alice", address)), "addr")
        longest = ".".join(["a" * 63] * 3 + ["a" * 61]) + ":65535"
        for address in ("alice.example:9090", "127.0.0.1:1", "[::1]:65535",
                        "[fe80::1]:9090", "Alice-2.Example:9090", longest):
            parse_frame(line(wire.hello(NODE_ID, "alice", address)))

    def test_hello_addr_lone_surrogate(self):
        """
        A hello.addr holding a lone surrogate (a legal JSON escape that is
        not Unicode text) is rejected, so it never reaches the console.
        """
        data = b'{"type":"hello","version":1,"id":"%s","name":"a","addr":"h\\ud800:1"}'
        self.assertRejected(data % NODE_ID.encode("ascii"), "addr")

    def test_entry_not_object(self):
        """
        An entry frame's C{entry} must be an object.
        """
        for value in (None, [], "entry", 1):
            self.assertRejected(line({"type": "entry", "entry": value}), "entry")
        self.assertRejected(line({"type": "entry"}), "entry")

    def test_error_reason(self):
        """
        An error frame needs a string reason.
        """
        self.assertRejected(line({"type": "error"}), "reason")
        self.assertRejected(line({"type": "error", "reason": 1}), "reason")

    def test_line_too_long(self):
        """
        A line over L{MAX_LINE_BYTES}, even valid JSON, is rejected.
        """
        head = b'{"type":"error","reason":"'
        tail = b'"}'
        data = head + b"x" * (MAX_LINE_BYTES + 1 - len(head) - len(tail)) + tail
        self.assertRejected(data, "longer than")

    @settings(max_examples=200, deadline=None)
    @given(strategies.garbage_bytes())
    def test_garbage_raises_only_frame_error(self, data):
        """
        Arbitrary bytes either parse to a dict with a known type or raise
        L{FrameError}; no other exception escapes.
        """
        try:
            frame = parse_frame(data)
        except FrameError:
            return
        self.assertIsInstance(frame, dict)
        self.assertIn(frame["type"], wire.FRAME_CHECKS)

    @settings(max_examples=200, deadline=None)
    @given(strategies.json_lines())
    def test_random_objects_raise_only_frame_error(self, data):
        """
        Any JSON object with a random type and random fields either parses
        to a frame of a known type or raises L{FrameError}.
        """
        try:
            frame = parse_frame(data)
        except FrameError:
            return
        self.assertIn(frame["type"], wire.FRAME_CHECKS)
        self.assertEqual(frame, json.loads(data))


class RoundTripTests(SynchronousTestCase):
    """
    L{encode_frame} and L{parse_frame} are inverses.
    """

    @settings(max_examples=100, deadline=None)
    @given(strategies.entries())
    def test_entry_frame_round_trip(self, entry):
        """
        An entry frame for any valid entry encodes to one line (no newline
        inside) that parses back to an equal frame.
        """
        frame = wire.entry_frame(entry.to_wire())
        data = encode_frame(frame)
        self.assertNotIn(b"\n", data)
        self.assertEqual(parse_frame(data), frame)

    @settings(max_examples=100, deadline=None)
    @given(strategies.node_ids(), strategies.names())
    def test_hello_round_trip(self, node_id, name):
        """
        A hello frame for any valid id and name round-trips.
        """
        frame = wire.hello(node_id, name, "[::1]:9090")
        self.assertEqual(parse_frame(encode_frame(frame)), frame)

    def test_encoding_is_canonical(self):
        """
        Frames are encoded as canonical JSON: sorted keys, no spaces.
        """
        self.assertEqual(
            encode_frame({"type": "error", "reason": "\u00e9"}),
            '{"reason":"\u00e9","type":"error"}'.encode("utf-8"),
        )


class GossipFrameTests(SynchronousTestCase):
    """
    L{wire.gossip} builds membership frames, and L{parse_frame} checks
    their envelope (the rows themselves are membership's to check).
    """

    ROW = {
        "id": NODE_ID, "inc": 1, "state": "alive", "hb": 2, "name": "bob",
        "addr": "bob.example:9090", "sig": "cd" * 64,
    }

    def test_round_trip(self):
        """
        A gossip frame of rows, and one of no rows, parse back equal.
        """
        for rows in ([self.ROW, {**self.ROW, "hb": 3}], []):
            frame = wire.gossip(rows)
            self.assertEqual(frame, {"type": "gossip", "rows": rows})
            self.assertEqual(parse_frame(encode_frame(frame)), frame)

    def test_most_rows(self):
        """
        L{wire.MAX_ROWS_PER_FRAME} rows are accepted; one more is not.
        """
        rows = [{}] * wire.MAX_ROWS_PER_FRAME
        self.assertEqual(parse_frame(line(wire.gossip(rows)))["rows"], rows)
        error = self.assertRaises(
            FrameError, parse_frame, line(wire.gossip(rows + [{}]))
        )
        self.assertEqual(str(error), "gossip frame has more than 1000 rows")

    def test_rows_not_a_list(self):
        """
        A gossip frame without a list of rows is rejected.
        """
        for frame in ({"type": "gossip"}, {"type": "gossip", "rows": {"a": 1}}):
            error = self.assertRaises(FrameError, parse_frame, line(frame))
            self.assertEqual(str(error), "gossip.rows is not a list")


class HelloAddressTests(SynchronousTestCase):
    """
    The hello's C{addr} key.
    """

    def test_addr_key_required(self):
        """
        A hello without an C{addr} key is a L{FrameError} (null stands for
        "no address"), never a crash later in the handshake.
        """
        frame = wire.hello("ab" * 32, "bob", None)
        del frame["addr"]
        error = self.assertRaises(wire.FrameError, wire.parse_frame, wire.encode_frame(frame))
        self.assertIn("addr", str(error))



class BuilderTests(SynchronousTestCase):
    """
    Every frame this node sends is built by a builder in L{wire}, and what
    each builder builds is exactly what L{parse_frame} accepts.
    """

    def assertBuilds(self, frame, expected):
        self.assertEqual(frame, expected)
        self.assertEqual(parse_frame(encode_frame(frame)), expected)

    def test_link_frames(self):
        """
        C{ping}, C{pong} and C{bye} carry nothing but their type.
        """
        self.assertBuilds(wire.ping(), {"type": "ping"})
        self.assertBuilds(wire.pong(), {"type": "pong"})
        self.assertBuilds(wire.bye(), {"type": "bye"})

    def test_replication_frames(self):
        """
        C{more}, C{prune}, C{ihave} (live or sync) and C{graft}.
        """
        self.assertBuilds(wire.more(), {"type": "more"})
        self.assertBuilds(wire.prune(), {"type": "prune"})
        self.assertBuilds(wire.ihave([NODE_ID]), {"type": "ihave", "ids": [NODE_ID]})
        self.assertBuilds(
            wire.ihave([NODE_ID], sync=True), {"type": "ihave", "ids": [NODE_ID], "sync": True}
        )
        self.assertBuilds(wire.graft([NODE_ID]), {"type": "graft", "ids": [NODE_ID]})

    def test_summary_and_error(self):
        """
        A summary page and an error frame.
        """
        self.assertBuilds(
            wire.summary_page(None, {NODE_ID: [1, 3]}, True),
            {"type": "summary", "after": None, "vv": {NODE_ID: [1, 3]}, "final": True},
        )
        self.assertBuilds(wire.error("no"), {"type": "error", "reason": "no"})

    def test_id_lists_bounded(self):
        """
        C{ihave} and C{graft} refuse to build a frame the peer would
        refuse: no ids, or more than L{wire.MAX_IDS_PER_FRAME}.
        """
        most = [NODE_ID] * wire.MAX_IDS_PER_FRAME
        self.assertEqual(len(wire.graft(most)["ids"]), wire.MAX_IDS_PER_FRAME)
        for build in (wire.ihave, wire.graft):
            self.assertRaises(ValueError, build, [])
            self.assertRaises(ValueError, build, most + [NODE_ID])
            self.assertRaises(FrameError, parse_frame, encode_frame(
                {"type": build.__name__, "ids": most + [NODE_ID]}))
