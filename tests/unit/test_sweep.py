"""
Tests of L{p2pchat.log.sweep}: the author space in slices, the pages of a
slice, and summary rounds on several links sharing one sweep (exact call
sequences with the recording fake output and a L{Clock}), then a fresh
node catching up from three nodes at once on nodes linked in memory:
each entry arrives once.
"""

from twisted.internet.task import Clock
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log import sweep
from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.replication import PAGE_AUTHORS, ReplicationConfig, Replicator
from p2pchat.log.sweep import Sweep, bounds, slice_page
from p2pchat.mesh import wire
from p2pchat.mesh.peer import PeerProtocol
from tests.nodes import Network
from tests.unit.test_replicator import RecordingOutput, author

F63 = "f" * 63


class BoundsTests(SynchronousTestCase):
    """
    L{bounds}: slices cut the 64-hex-digit author space evenly, end to end.
    """

    def test_sixteen_slices(self):
        """
        Sixteen slices are the ids by first hex digit: slice i covers
        (i-1 f..f, i f..f]; the first starts at the start, the last runs
        to the end.
        """
        self.assertEqual(bounds(0, 16), (None, "0" + F63))
        self.assertEqual(bounds(1, 16), ("0" + F63, "1" + F63))
        self.assertEqual(bounds(15, 16), ("e" + F63, None))

    def test_one_slice_is_everything(self):
        self.assertEqual(bounds(0, 1), (None, None))

    def test_contiguous(self):
        """
        Each slice starts where the previous one ends, for any count.
        """
        for slices in (2, 3, 7, 16, 64):
            for index in range(1, slices):
                self.assertEqual(bounds(index, slices)[0], bounds(index - 1, slices)[1])

    def test_no_slices_refused(self):
        self.assertRaises(ValueError, Sweep, 0)


class SlicePageTests(SynchronousTestCase):
    """
    L{slice_page}: the pages of one slice, each a valid C{summary} frame.
    """

    def check(self, frame):
        self.assertEqual(wire.parse_frame(wire.encode_frame(frame)), frame)

    def test_empty_slice_names_its_end_with_nothing_held(self):
        """
        A slice this node holds nothing of is one page that is not final,
        naming the slice's last id with 0; rows beyond the slice are left
        out.
        """
        upto = "3" + F63
        frame, closing = slice_page("2" + F63, [("4" + "0" * 63, 1, 1)], 500, upto)
        self.assertEqual(frame, wire.summary_page("2" + F63, {upto: 0}, False))
        self.assertTrue(closing)
        self.check(frame)

    def test_held_end_named_once(self):
        """
        When this node holds the slice's last id, that row closes the page
        (it is not named twice).
        """
        upto = "3" + F63
        frame, closing = slice_page(None, [("3" + "0" * 63, 2, 2), (upto, 1, 4)], 500, upto)
        self.assertEqual(frame["vv"], {"3" + "0" * 63: 2, upto: [1, 4]})
        self.assertTrue(closing)
        self.check(frame)

    def test_full_page_continues_the_slice(self):
        """
        A page of C{limit} rows inside the slice does not close it: the
        next page starts after its last row.
        """
        rows = [(author(i), 1, 1) for i in range(3)]
        frame, closing = slice_page(None, rows, 3, "0" + F63)
        self.assertEqual(frame, wire.summary_page(None, {author(i): 1 for i in range(3)}, False))
        self.assertFalse(closing)

    def test_last_slice_is_final(self):
        frame, closing = slice_page("e" + F63, [], 500, None)
        self.assertEqual(frame, wire.summary_page("e" + F63, {}, True))
        self.assertTrue(closing)
        self.check(frame)


class SlicedRoundTests(SynchronousTestCase):
    """
    Rounds over four slices on up to three links, call by call.
    """

    def setUp(self):
        self.clock = Clock()
        self.output = RecordingOutput()
        self.replicator = Replicator(
            self.clock, self.output, ReplicationConfig(summary_slices=4, confirm_wait_s=10.0)
        )

    def pages(self):
        """
        Run the actions queued, and return the summary pages sent, by link.
        """
        self.output.run_actions()
        calls = self.output.take()
        return [(c[1], c[2]["after"], list(c[2]["vv"]), c[2]["final"])
                for c in calls if c[0] == "send"]

    def more(self, link):
        self.replicator.rx_frame(link, {"type": "more"})

    def test_one_link_asks_every_slice_in_order(self):
        """
        Alone, a round asks its link every slice in turn, one page each
        here, each only after the previous was answered, and then
        settles.
        """
        self.replicator.link_up("a")
        cuts = [bounds(i, 4) for i in range(4)]
        for index, (after, upto) in enumerate(cuts):
            self.assertEqual(self.output.calls, [("when_ready", "a")])
            self.assertEqual(self.pages(), [("a", after, [upto] if upto else [], index == 3)])
            self.more("a")
        self.assertEqual(self.output.take(), [("settle", "a")])

    def test_links_share_slices_then_confirm(self):
        """
        Three rounds at once take the slices in turn (0, 1, 2; the first
        link done takes 3).  The others wait until every shared slice is
        answered; then each asks its own link, in order, about the slices
        the others answered.
        """
        for link in "abc":
            self.replicator.link_up(link)
        self.assertEqual(self.pages(), [("a", None, [bounds(0, 4)[1]], False),
                                        ("b", bounds(1, 4)[0], [bounds(1, 4)[1]], False),
                                        ("c", bounds(2, 4)[0], [bounds(2, 4)[1]], False)])
        self.more("b")
        self.assertEqual(self.pages(), [("b", bounds(3, 4)[0], [], True)])
        self.more("a")
        self.more("c")
        self.assertEqual(self.output.take(), [])
        self.more("b")
        # Every shared slice answered: each link asks about its first
        # slice answered by another (a: 1, b: 0, c: 0).
        self.assertEqual([p[:2] for p in self.pages()],
                         [("b", None), ("a", bounds(1, 4)[0]), ("c", None)])

    def share(self):
        """
        Links a and b share four slices (a: 0 and 3, b: 1 and 2) and both
        wait for the confirm phase.
        """
        for link in "ab":
            self.replicator.link_up(link)
        self.pages()
        self.more("b")
        self.pages()
        self.more("a")
        self.assertEqual([p[:2] for p in self.pages()], [("a", bounds(3, 4)[0])])
        self.more("b")
        self.more("a")

    def test_confirm_waits_for_commits(self):
        """
        While entries received are not committed (C{pending}), the confirm
        phase waits; the first tick after they are goes on.
        """
        self.output.in_flight = 7
        self.share()
        self.assertEqual(self.output.take(), [])
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.output.in_flight = 0
        self.replicator.tick()
        self.assertEqual([p[:2] for p in self.pages()],
                         [("a", bounds(1, 4)[0]), ("b", None)])

    def test_confirm_wait_is_bounded(self):
        """
        Entries that never stop arriving delay the confirm phase by at
        most C{confirm_wait_s}.
        """
        self.output.in_flight = 1
        self.share()
        self.clock.advance(9.9)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(0.1)
        self.replicator.tick()
        self.assertEqual([p[0] for p in self.pages()], ["a", "b"])

    def test_closed_link_gives_its_slice_back(self):
        """
        A link that closes while asking a shared slice gives it back:
        another round takes it, and the slice is still asked once shared.
        """
        for link in "ab":
            self.replicator.link_up(link)
        self.pages()
        self.more("a")
        self.assertEqual([p[:2] for p in self.pages()], [("a", bounds(2, 4)[0])])
        self.replicator.link_down("b")
        self.more("a")
        self.assertEqual([p[:2] for p in self.pages()], [("a", bounds(1, 4)[0])])
        self.more("a")
        self.assertEqual([p[:2] for p in self.pages()], [("a", bounds(3, 4)[0])])
        self.more("a")
        self.assertEqual(self.output.take(), [("settle", "a")])

    def test_rerun_joins_a_new_sweep(self):
        """
        A round asked for during one runs after it, over every slice.
        """
        self.replicator.link_up("a")
        self.replicator.send_summary("a")
        for _ in range(4):
            self.pages()
            self.more("a")
        for _ in range(4):
            self.assertEqual(len(self.pages()), 1)
            self.more("a")
        self.assertEqual(self.output.take(), [("settle", "a")])


def authored(count_authors, per_author):
    """
    @return: chained chat entries of C{count_authors} new authors.
    """
    entries = []
    for _ in range(count_authors):
        identity, prev = Identity.generate(), None
        for seq in range(1, per_author + 1):
            entry = create_entry(identity, seq, prev, seq, 0, "chat",
                                 {"name": "n", "text": f"t{seq}"})
            entries.append(entry)
            prev = entry.id
    return entries


class ThreeSourcesTests(SynchronousTestCase):
    """
    A fresh node linked to three nodes holding the same entries, all at
    once (the links come up before any byte moves), on nodes in memory.
    """

    def catch_up(self, config=None):
        net = Network(self)
        entries = authored(16, 80)
        sources = [net.node(name) for name in ("s1", "s2", "s3")]
        for source in sources:
            source.store.add_entries(entries)
        fresh = net.node("fresh", replication=config)
        for source in sources:
            _, _, pump = iosim.connectedServerAndClient(
                lambda source=source: PeerProtocol(source.links, net.clock, False, 10.0),
                lambda: PeerProtocol(fresh.links, net.clock, True, 10.0),
                greet=False, clock=net.clock,
            )
            net.pumps.append(pump)
        net.settle(rounds=500)
        net.tick(times=3)
        self.assertEqual(fresh.chat.status()["messages"], len(entries))
        return fresh.feed.entries_received, len(entries)

    def test_each_entry_arrives_once(self):
        received, count = self.catch_up()
        self.assertEqual(received, count)

    def test_one_slice_entries_arrive_once(self):
        """
        With rounds over the whole space (one slice), the rounds run one
        after the other: still once each.
        """
        received, count = self.catch_up(ReplicationConfig(summary_slices=1))
        self.assertEqual(received, count)

    def test_without_sharing_entries_arrive_more_than_once(self):
        """
        The same catch-up with each round asking its own link every slice
        at once (no shared sweep, no waiting): the sources stream the same
        entries (what the sweep prevents).
        """
        self.patch(sweep.Sweep, "claim", lambda self, link: None)
        self.patch(sweep.Rounds, "_may_confirm", lambda self, state: True)
        received, count = self.catch_up()
        self.assertGreater(received, 1.5 * count)


class PageLimitTests(SynchronousTestCase):
    """
    A slice holding more than a page of authors is asked in full pages,
    then a closing one.
    """

    def test_slice_over_a_page(self):
        clock, output = Clock(), RecordingOutput(
            [(author(i), 1, 1) for i in range(PAGE_AUTHORS + 3)])
        replicator = Replicator(clock, output, ReplicationConfig(summary_slices=2))
        replicator.link_up("a")
        sizes = []
        while output.actions:
            output.run_actions()
            frames = output.frames("summary")
            output.take()
            sizes += [(len(f["vv"]), f["final"]) for f in frames]
            replicator.rx_frame("a", {"type": "more"})
        self.assertEqual(sizes, [(PAGE_AUTHORS, False), (4, False), (0, True)])


class SilentPeerTests(SynchronousTestCase):
    """
    A peer that never answers its shared slice stalls the other rounds'
    confirm phase for at most C{confirm_wait_s} of its silence.
    """

    def setUp(self):
        self.clock = Clock()
        self.output = RecordingOutput()
        self.replicator = Replicator(
            self.clock, self.output, ReplicationConfig(summary_slices=2, confirm_wait_s=10.0))
        for link in ("good", "silent"):
            self.replicator.link_up(link)
        self.output.run_actions()
        self.replicator.rx_frame("good", {"type": "more"})
        self.output.take()

    def confirms(self):
        self.output.run_actions()
        return [c[1] for c in self.output.take() if c[0] == "send"]

    def test_silent_peer_waited_for_then_passed(self):
        self.clock.advance(9.9)
        self.replicator.tick()
        self.assertEqual(self.confirms(), [])
        self.clock.advance(0.1)
        self.replicator.tick()
        self.assertEqual(self.confirms(), ["good"])

    def test_streaming_peer_waited_for(self):
        """
        A peer still streaming its slice (entries marked C{sync}) is
        waited for as long as it streams.
        """
        for _ in range(30):
            self.clock.advance(1.0)
            self.replicator.streamed("silent")
            self.replicator.tick()
        self.assertEqual(self.confirms(), [])
        self.clock.advance(10.0)
        self.replicator.tick()
        self.assertEqual(self.confirms(), ["good"])
