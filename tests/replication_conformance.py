"""
Conformance tests for L{p2pchat.log.replication.IReplicationOutput}: the
contract a L{p2pchat.log.replication.Replicator} relies on, to run against
every implementation and fake.

To apply them, mix L{OutputConformance} (every output, fakes included)
and, for an output that really streams entries to a link,
L{StreamingOutputConformance} into a L{SynchronousTestCase} that defines
C{make_harness(entries)}: build the output under test holding exactly
C{entries} (chained L{p2pchat.log.entry.Entry}s), with one link up, and
return a L{Harness}.  C{tests/unit/test_replicator.py} applies the first
to its recording fake; C{tests/unit/test_replication.py} applies both to
the node's output (through L{tests.nodes.Network}): a new implementation
gets its own small subclass with its own C{make_harness}.
"""

from dataclasses import dataclass
from typing import Callable, List

from zope.interface.verify import verifyObject

from p2pchat.log.entry import create_entry
from p2pchat.log.replication import FRAME_TYPES, IReplicationOutput
from p2pchat.mesh import wire
from tests.strategies import IDENTITIES

REPLICATION_AND_ENTRY_FRAMES = FRAME_TYPES | {"entry"}


@dataclass
class Harness:
    """
    An output under test.

    @ivar output: the L{IReplicationOutput}.
    @ivar link: the one link it has up.
    @ivar pump: runs whatever the output deferred (the link's producer,
        the transport) until nothing moves.
    @ivar sent: returns the frames the output sent on the link since the
        last call, in order.
    """

    output: object
    link: object
    pump: Callable[[], None]
    sent: Callable[[], List[dict]]


def chain(identity, seqs):
    """
    @return: C{identity}'s chat entries with these seqs (chained to the
        ones left out).
    """
    entries, prev = [], None
    for seq in range(1, max(seqs) + 1):
        entry = create_entry(identity, seq, prev, seq, 0, "chat", {"name": "n", "text": "t"})
        prev = entry.id
        if seq in seqs:
            entries.append(entry)
    return entries


class OutputConformance:
    """
    What every L{IReplicationOutput} does.  Three feeds: one whole (seqs
    1-3), one with a hole (1 and 3), one without its first entry (2).
    """

    def make_harness(self, entries) -> Harness:
        raise NotImplementedError("a conformance test case defines make_harness")

    def setUp(self):
        whole, holed, headless = IDENTITIES
        self.entries = chain(whole, [1, 2, 3]) + chain(holed, [1, 3]) + chain(headless, [2])
        self.expected_rows = sorted([
            (whole.node_id, 3, 3), (holed.node_id, 1, 3), (headless.node_id, 0, 2),
        ])
        self.harness = self.make_harness(self.entries)
        self.harness.pump()
        self.harness.sent()

    def replication_frames(self):
        """
        @return: the replication and entry frames sent since the last call.
        """
        return [f for f in self.harness.sent() if f["type"] in REPLICATION_AND_ENTRY_FRAMES]

    def test_provides_interface(self):
        """
        The output provides every method of the interface.
        """
        self.assertTrue(verifyObject(IReplicationOutput, self.harness.output))

    def test_holds(self):
        """
        C{holds} is true for every held entry and false for others.
        """
        output = self.harness.output
        for entry in self.entries:
            self.assertTrue(output.holds(entry.id))
        self.assertFalse(output.holds("ab" * 32))

    def test_feeds_page(self):
        """
        C{feeds_page} gives C{(author, contiguous, head)} ascending by
        author, at most C{limit}, after C{after}.
        """
        output, rows = self.harness.output, self.expected_rows
        self.assertEqual([tuple(r) for r in output.feeds_page(None, 10)], rows)
        self.assertEqual([tuple(r) for r in output.feeds_page(None, 2)], rows[:2])
        self.assertEqual([tuple(r) for r in output.feeds_page(rows[0][0], 10)], rows[1:])
        self.assertEqual(list(output.feeds_page(rows[-1][0], 10)), [])

    def test_send(self):
        """
        C{send} puts the frame on the link, once.
        """
        self.harness.output.send(self.harness.link, wire.prune())
        self.harness.pump()
        self.assertEqual(self.replication_frames(), [wire.prune()])

    def test_when_ready(self):
        """
        An action handed to C{when_ready} has run once the link's producer
        ran.
        """
        ran = []
        self.harness.output.when_ready(self.harness.link, lambda: ran.append(True))
        self.harness.pump()
        self.assertEqual(ran, [True])

    def test_answer_is_done_once(self):
        """
        C{answer} calls C{done} exactly once.
        """
        done = []
        self.harness.output.answer(self.harness.link, None, None, {}, lambda: done.append(1))
        self.harness.pump()
        self.assertEqual(done, [1])

    def test_graft_counts_dropped(self):
        """
        C{graft} of a few ids drops none.
        """
        dropped = self.harness.output.graft(self.harness.link, [self.entries[0].id])
        self.assertEqual(dropped, 0)

    def test_solicit_and_settle_send_nothing(self):
        """
        C{solicit} and C{settle} change how the link's input is charged;
        they send nothing.
        """
        self.harness.output.solicit(self.harness.link)
        self.harness.output.settle(self.harness.link)
        self.harness.pump()
        self.assertEqual(self.replication_frames(), [])


class StreamingOutputConformance(OutputConformance):
    """
    What an output that streams entries to its link does too.
    """

    def streamed(self):
        """
        @return: C{(author, seq)} of the entries sent since the last call,
            all of which were marked C{sync}.
        """
        entries = [f for f in self.replication_frames() if f["type"] == "entry"]
        self.assertTrue(all(f.get("sync") for f in entries))
        return [(f["entry"]["author"], f["entry"]["seq"]) for f in entries]

    def test_answer_streams_what_the_asker_lacks(self):
        """
        An empty summary page covering every author is answered with every
        held entry, before C{done}.
        """
        streamed_at_done = []
        self.harness.output.answer(
            self.harness.link, None, None, {},
            lambda: streamed_at_done.append(self.streamed()),
        )
        self.harness.pump()
        self.assertEqual(
            [sorted(streamed) for streamed in streamed_at_done],
            [sorted((e.author, e.seq) for e in self.entries)],
        )
        self.assertEqual(self.streamed(), [])

    def test_answer_follows_the_summary(self):
        """
        A feed the asker holds whole is not sent, and for a feed where it
        holds more than this node nothing is sent either.
        """
        whole, holed, headless = IDENTITIES
        vv = {whole.node_id: 3, holed.node_id: [1, 3], headless.node_id: 5}
        self.harness.output.answer(self.harness.link, None, None, vv, lambda: None)
        self.harness.pump()
        self.assertEqual(self.streamed(), [])

    def test_graft_streams_the_entries(self):
        """
        Grafted ids are sent in full, marked C{sync}; unknown ones are not.
        """
        entry = self.entries[1]
        self.harness.output.graft(self.harness.link, [entry.id, "ab" * 32])
        self.harness.pump()
        self.assertEqual(self.streamed(), [(entry.author, entry.seq)])
