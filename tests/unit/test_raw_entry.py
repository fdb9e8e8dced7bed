"""
Tests for L{p2pchat.mesh.raw_entry}: an entry frame recognised by its
line's head and tail, parsed later with exactly the verdict of
L{wire.parse_frame}.
"""

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.raw_entry import RawEntry, lazy_entry_frame

ENTRY = create_entry(Identity.generate(), 1, None, 1, 0, "chat", {"name": "a", "text": "hi"})
HEAD, TAIL, SYNC_TAIL = b'{"entry":{', b',"type":"entry"}', b',"sync":true,"type":"entry"}'


def verdict(call):
    """
    @return: what C{call()} returned, or the L{wire.FrameError} text.
    """
    try:
        return ("ok", call())
    except wire.FrameError as e:
        return ("refused", str(e))


class LazyEntryFrameTests(SynchronousTestCase):
    def test_encoded_entry_frames_not_parsed(self):
        """
        Entry frames as L{wire.encode_frame} writes them, live or sync,
        are recognised; their entry loads as L{wire.parse_frame} reads it.
        """
        for sync in (False, True):
            line = wire.encode_frame(wire.entry_frame(ENTRY.to_wire(), sync))
            frame = lazy_entry_frame(line)
            self.assertEqual(frame, dict(wire.parse_frame(line), entry=RawEntry(line, sync)))
            self.assertEqual(frame["entry"].load(), ENTRY.to_wire())
            self.assertEqual(len(frame["entry"]), len(line))

    def test_other_lines_left_to_parse_frame(self):
        """
        Other frames, entry frames written in another key order, and lines
        over the length limit are not taken.
        """
        for line in (
            wire.encode_frame(wire.ping()),
            b'{"type":"entry","entry":{}}',
            b'{"entry":[],"type":"entry"}',
            HEAD + b"x" * wire.MAX_LINE_BYTES + b"}" + TAIL,
        ):
            self.assertIsNone(lazy_entry_frame(line))

    def test_more_fields_decided_by_the_whole_line(self):
        """
        A line with that head and tail but more between (another field, a
        repeated key, sync false) loads what parse_frame reads; its sync is
        read only from the tail (a frame that is not is charged as live).
        """
        lines = [
            HEAD + b'"a":1},"x":2' + TAIL,
            HEAD + b'"a":1},"sync":false' + TAIL,
            HEAD + b'"a":1},"entry":{"b":2}' + TAIL,
            HEAD + b'"a":1},"sync":true,"x":2' + TAIL,
        ]
        for line in lines:
            frame = lazy_entry_frame(line)
            self.assertEqual(frame["entry"].load(), wire.parse_frame(line)["entry"])
            self.assertNotIn("sync", frame)

    def test_refused_as_parse_frame_refuses(self):
        """
        A line parse_frame refuses is refused by load, with its reason.
        """
        for line in (
            HEAD + b'"a":NaN}' + TAIL,
            HEAD + b'"a":1\xff}' + TAIL,
            HEAD + b'"a":1' + TAIL,
            HEAD + b'"a":1},"entry":3' + TAIL,
            HEAD + b'"a":1},"sync":3' + TAIL,
        ):
            expected = verdict(lambda line=line: wire.parse_frame(line))
            self.assertEqual(expected[0], "refused")
            self.assertEqual(verdict(lazy_entry_frame(line)["entry"].load), expected)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from([b"{", b"}", b'"a"', b":", b",", b"1", b"NaN", b'"entry"',
                             b'"sync"', b"true", b"[", b"]", b"\xff", b'"\\ud800"', b" "]),
            max_size=12,
        ).map(b"".join),
        st.booleans(),
    )
    def test_same_verdict_as_parse_frame(self, middle, sync):
        """
        For any line with an entry frame's head and tail, load gives what
        parse_frame gives for the entry, or refuses it with the same
        reason.
        """
        line = HEAD + middle + (SYNC_TAIL if sync else TAIL)
        frame = lazy_entry_frame(line)
        expected = verdict(lambda: wire.parse_frame(line)["entry"])
        self.assertEqual(verdict(frame["entry"].load), expected)
        if expected[0] == "ok" and frame.get("sync"):
            self.assertIs(wire.parse_frame(line).get("sync"), True)
