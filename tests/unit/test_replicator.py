"""
Unit tests of the sans-IO L{Replicator} with a recording fake output and a
L{Clock}: exact call sequences for summary rounds, live delivery (push,
announce, prune, graft) and anti-entropy timing, and every per-link budget
(each test fails without the defence it names).  The fake itself passes
the output conformance tests (L{tests.replication_conformance}).
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from p2pchat.log.replication import (
    MAX_GRAFTS,
    MAX_MISSING_PER_LINK,
    PAGE_AUTHORS,
    IReplicationOutput,
    ReplicationConfig,
    Replicator,
    wanted,
)
from p2pchat.mesh import wire
from p2pchat.mesh.wire import FrameError
from tests.replication_conformance import Harness, OutputConformance


def author(n):
    """
    @return: a node id that sorts in the order of C{n}.
    """
    return f"{n:064x}"


@implementer(IReplicationOutput)
class RecordingOutput:
    """
    Records every call; holds the feeds C{rows} (author, contiguous, head)
    and the entry ids in C{held}.  Actions handed to C{when_ready} and
    C{done} callbacks handed to C{answer} are kept for the test to run.
    """

    def __init__(self, rows=(), held=()):
        self.rows = sorted(rows)
        self.held = set(held)
        self.calls = []
        self.actions = []
        self.answers = []
        self.drop_grafts = 0
        self.in_flight = 0

    def send(self, link, frame):
        self.calls.append(("send", link, frame))

    def when_ready(self, link, action):
        self.calls.append(("when_ready", link))
        self.actions.append(action)

    def answer(self, link, after, upto, vv, done):
        self.calls.append(("answer", link, after, upto, dict(vv)))
        self.answers.append(done)

    def graft(self, link, entry_ids):
        self.calls.append(("graft", link, list(entry_ids)))
        return self.drop_grafts

    def solicit(self, link):
        self.calls.append(("solicit", link))

    def settle(self, link):
        self.calls.append(("settle", link))

    def holds(self, entry_id):
        return entry_id in self.held

    def pending(self):
        return self.in_flight

    def feeds_page(self, after, limit):
        self.calls.append(("feeds_page", after, limit))
        return [row for row in self.rows if after is None or row[0] > after][:limit]

    def run_actions(self):
        actions, self.actions = self.actions, []
        for action in actions:
            action()

    def finish_answers(self):
        answers, self.answers = self.answers, []
        for done in answers:
            done()

    def take(self):
        calls, self.calls = self.calls, []
        return calls

    def frames(self, frame_type):
        return [c[2] for c in self.calls if c[0] == "send" and c[2]["type"] == frame_type]


class Fixture(SynchronousTestCase):
    config = ReplicationConfig()

    def make(self, rows=(), held=()):
        self.clock = Clock()
        self.output = RecordingOutput(rows, held)
        verifyObject(IReplicationOutput, self.output)
        self.replicator = Replicator(self.clock, self.output, self.config)
        self.link = "link-1"
        self.replicator.link_up(self.link)
        return self.replicator

    def finish_own_round(self):
        """
        Answer every page of this node's round on C{self.link} at once.
        """
        while self.output.actions:
            self.output.run_actions()
            if self.output.frames("summary"):
                self.replicator.rx_frame(self.link, {"type": "more"})


class SummaryRoundTests(Fixture):
    """
    This node's own summary round: pages read lazily, one in flight (here
    over the author space in one slice; see L{SlicedRoundTests}).
    """

    config = ReplicationConfig(summary_slices=1)

    def test_round_is_paged_and_acknowledged(self):
        """
        A vector of 1,200 authors goes out as pages of 500, 500 and 200,
        each read from the store only after the previous one was answered
        with C{more}, and only from the link's producer (C{when_ready});
        the round ends with C{settle}.
        """
        rows = [(author(i), 1, 1) for i in range(1200)]
        self.make(rows)
        self.assertEqual(self.output.take(), [("when_ready", self.link)])
        self.output.run_actions()
        calls = self.output.take()
        self.assertEqual(calls[:2], [("feeds_page", None, PAGE_AUTHORS), ("solicit", self.link)])
        first = calls[2][2]
        self.assertEqual((first["after"], first["final"], len(first["vv"])), (None, False, 500))
        # Nothing more until "more".
        self.replicator.tick()
        self.assertEqual(self.output.frames("summary"), [])
        self.replicator.rx_frame(self.link, {"type": "more"})
        self.assertEqual(self.output.take(), [("when_ready", self.link)])
        self.output.run_actions()
        second = self.output.take()
        self.assertEqual(second[0], ("feeds_page", author(499), PAGE_AUTHORS))
        self.assertEqual((second[2][2]["after"], second[2][2]["final"]), (author(499), False))
        self.replicator.rx_frame(self.link, {"type": "more"})
        self.output.run_actions()
        third = self.output.take()[-1][2]
        self.assertEqual((third["after"], third["final"], len(third["vv"])),
                         (author(999), True, 200))
        self.replicator.rx_frame(self.link, {"type": "more"})
        self.assertEqual(self.output.take(), [("settle", self.link)])

    def test_hole_is_summarised_as_pair(self):
        """
        A feed with a hole is C{[contiguous, head]}; a feed without one is
        a plain seq (exactly one form each).
        """
        self.make([(author(1), 3, 3), (author(2), 0, 9), (author(3), 2, 5)])
        self.output.run_actions()
        page = self.output.frames("summary")[0]
        self.assertEqual(page["vv"], {author(1): 3, author(2): [0, 9], author(3): [2, 5]})
        wire.parse_frame(wire.encode_frame(page))

    def test_requests_coalesce(self):
        """
        Asking for a round while one runs runs exactly one more after it
        (however often it was asked); C{settle} comes after the last.
        """
        self.make([(author(1), 1, 1)])
        for _ in range(5):
            self.replicator.send_summary(self.link)
        self.output.run_actions()
        self.assertEqual(len(self.output.frames("summary")), 1)
        self.output.take()
        self.replicator.rx_frame(self.link, {"type": "more"})
        self.assertEqual(self.output.take(), [("when_ready", self.link)])
        self.output.run_actions()
        self.assertEqual(len(self.output.frames("summary")), 1)
        self.output.take()
        self.replicator.rx_frame(self.link, {"type": "more"})
        self.assertEqual(self.output.take(), [("settle", self.link)])

    def test_unexpected_more_is_misbehaving(self):
        """
        C{more} with no page of ours unanswered breaks the protocol.
        """
        self.make()
        self.output.run_actions()
        self.replicator.rx_frame(self.link, {"type": "more"})
        self.assertRaises(FrameError, self.replicator.rx_frame, self.link, {"type": "more"})


class AnsweringTests(Fixture):
    """
    Pages from the peer: answered one at a time, at any total size.
    """

    def page(self, start, count, final=False):
        after = author(start - 1) if start else None
        vv = {author(i): 0 for i in range(start, start + count)}
        return wire.parse_frame(wire.encode_frame(wire.summary_page(after, vv, final)))

    def test_over_100000_authors(self):
        """
        A round of 201 full pages (100,500 authors, over v1's 100,000
        limit) is answered page by page: each page becomes one C{answer}
        over its own author range, then one C{more}; the link is never
        refused.
        """
        self.make()
        self.output.take()
        for index in range(201):
            final = index == 200
            self.replicator.rx_frame(self.link, self.page(index * 500, 500, final))
            call = self.output.take()[0]
            upto = None if final else author(index * 500 + 499)
            self.assertEqual(call[:4], ("answer", self.link,
                                        author(index * 500 - 1) if index else None, upto))
            self.output.answers.pop()()
            self.assertEqual(self.output.take(), [("send", self.link, {"type": "more"})])

    def test_second_unanswered_page_is_misbehaving(self):
        """
        A page before the previous one was answered breaks the protocol.
        """
        self.make()
        self.replicator.rx_frame(self.link, self.page(0, 10))
        self.assertRaises(FrameError, self.replicator.rx_frame, self.link, self.page(10, 10))

    def test_pages_over_the_rate_delay_more(self):
        """
        Beyond the summary budget (burst 500, then 50 pages a second),
        C{more} waits for the budget instead of going at once: the peer is
        slowed, not refused.
        """
        self.make()
        for index in range(501):
            self.replicator.rx_frame(self.link, self.page(index, 1))
            self.output.take()
            self.output.answers.pop()()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(1 / 50)
        self.assertEqual(self.output.take(), [("send", self.link, {"type": "more"})])


class LiveDeliveryTests(Fixture):
    """
    Live delivery (Plumtree) and anti-entropy timing, call by call.
    """

    ENTRY = "cd" * 32

    def setUp(self):
        self.make()
        self.finish_own_round()
        self.output.take()

    def test_pushed_on_eager_links_announced_on_lazy_ones(self):
        """
        A new entry is pushed on eager links (the return value), never back
        to its source, and announced on lazy links at the next tick.
        """
        self.replicator.link_up("link-2")
        self.replicator.link_up("link-3")
        self.replicator.rx_frame("link-3", wire.prune())
        self.output.take()
        self.assertEqual(self.replicator.entry_added(self.ENTRY, "link-2"), [self.link])
        self.assertEqual(self.output.take(), [])
        self.replicator.tick()
        self.assertEqual(self.output.take(), [("send", "link-3", wire.ihave([self.ENTRY]))])
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])

    def test_duplicate_prunes_once(self):
        """
        A duplicate on an eager link makes it lazy and asks the sender to
        prune, once; the entry after is announced instead of pushed.
        """
        self.replicator.link_up("link-2")
        self.output.take()
        self.replicator.entry_duplicate(self.link)
        self.assertEqual(self.output.take(), [("send", self.link, wire.prune())])
        self.replicator.entry_duplicate(self.link)
        self.assertEqual(self.output.take(), [])
        self.assertEqual(self.replicator.entry_added(self.ENTRY, None), ["link-2"])

    def test_last_eager_link_is_kept(self):
        """
        A duplicate on the node's last eager link does not prune it: with
        several authors posting at once, prunes for different entries
        would otherwise cut the node off the tree.
        """
        self.replicator.link_up("link-2")
        self.replicator.rx_frame("link-2", wire.prune())
        self.output.take()
        self.replicator.entry_duplicate(self.link)
        self.assertEqual(self.output.take(), [])
        self.assertEqual(self.replicator.entry_added(self.ENTRY, None), [self.link])

    def test_first_copy_makes_its_link_eager(self):
        """
        The first copy of an entry pushed on a lazy link puts the link
        back on the tree: the next entry is pushed on it (Plumtree); a
        copy that came to catch up does not.
        """
        self.replicator.link_up("link-2")
        self.replicator.rx_frame("link-2", wire.prune())
        self.output.take()
        self.replicator.entry_added("ab" * 32, "link-2", live=False)
        self.assertEqual(self.replicator.entry_added("ac" * 32, None), [self.link])
        self.replicator.entry_added("ad" * 32, "link-2")
        self.assertEqual(self.replicator.entry_added(self.ENTRY, None), [self.link, "link-2"])

    def test_cut_off_node_grafts_at_once(self):
        """
        A node whose every link was pruned grafts an announced entry at
        the next tick instead of waiting for a late copy: nothing is
        pushed to it.
        """
        self.replicator.rx_frame(self.link, wire.prune())
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.replicator.tick()
        self.assertEqual(
            self.output.take(),
            [("solicit", self.link), ("send", self.link, wire.graft([self.ENTRY]))],
        )

    def test_announced_entry_grafted_after_time_out(self):
        """
        An announced entry that has not arrived within C{graft_timeout_s}
        (0.05 s, while copies are not late) is asked for: C{solicit}, then
        a C{graft}; once it arrives, it is not asked for again.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.clock.advance(0.04)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(0.01)
        self.replicator.tick()
        self.assertEqual(
            self.output.take(),
            [("solicit", self.link), ("send", self.link, wire.graft([self.ENTRY]))],
        )
        self.replicator.entry_added(self.ENTRY, self.link)
        self.clock.advance(5)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])

    def test_graft_is_repeated_after_a_second(self):
        """
        A grafted entry is streamed, which takes a while: it is grafted
        again, from the next link that announced it, only 1 s later
        (C{regraft_s}), not one graft timeout (0.05 s) later.
        """
        self.replicator.link_up("link-2")
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.replicator.rx_frame("link-2", wire.ihave([self.ENTRY]))
        self.output.take()
        self.clock.advance(0.05)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [
            ("solicit", self.link), ("send", self.link, wire.graft([self.ENTRY]))])
        self.clock.advance(0.9)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(0.1)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [
            ("solicit", "link-2"), ("send", "link-2", wire.graft([self.ENTRY]))])

    def test_copy_being_verified_is_not_grafted(self):
        """
        An announced entry whose copy has arrived but is still being
        verified (the output holds it) is not grafted when its time is
        up; it leaves the missing ids when it is committed.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.output.held.add(self.ENTRY)
        self.clock.advance(1)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.replicator.entry_added(self.ENTRY, self.link)
        self.assertEqual(self.replicator.missing, {})

    def test_held_id_is_forgotten(self):
        """
        An announced id held without ever being reported committed (a
        commit that failed after all) is not kept for ever: each wait it
        is found held counts as a graft, and after L{MAX_GRAFTS} it is
        forgotten, without a graft sent.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.output.held.add(self.ENTRY)
        for _ in range(MAX_GRAFTS + 1):
            self.clock.advance(1)
            self.replicator.tick()
        self.assertEqual(self.replicator.missing, {})
        self.assertEqual([c for c in self.output.take() if c[0] != "send" or
                          c[2]["type"] == "graft"], [])

    def test_catch_up_copy_does_not_make_its_link_eager(self):
        """
        An announced entry that comes as catch-up (C{sync}) from a lazy
        link does not make that link eager: it did not push it.
        """
        self.replicator.link_up("link-2")
        self.replicator.rx_frame("link-2", wire.prune())
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.output.take()
        self.replicator.entry_added(self.ENTRY, "link-2", live=False)
        self.assertEqual(self.replicator.entry_added("ab" * 32, None), [self.link])

    def test_held_announcement_ignored(self):
        """
        An announced entry the node holds is never grafted.
        """
        self.output.held.add(self.ENTRY)
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.clock.advance(5)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])

    def test_catch_up_entries_announced_as_sync(self):
        """
        An entry that arrived to catch up is pushed nowhere, and announced
        on every other link in one C{ihave} marked C{sync} at the tick.
        """
        self.replicator.link_up("link-2")
        self.output.take()
        self.assertEqual(self.replicator.entry_added(self.ENTRY, "link-2", live=False), [])
        self.replicator.tick()
        self.assertEqual(
            self.output.take(), [("send", self.link, wire.ihave([self.ENTRY], sync=True))]
        )

    def test_link_down_forgets_its_announcements(self):
        """
        Ids announced only by a link that went down are never grafted.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.replicator.link_down(self.link)
        self.clock.advance(5)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.assertEqual(self.replicator.missing, {})

    def test_anti_entropy_round_every_interval(self):
        """
        Every C{anti_entropy_interval_s} (30 s), a summary round starts on
        a link, from its producer.
        """
        self.clock.advance(29.9)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(0.1)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [("when_ready", self.link)])

    def test_gap_rounds_spaced(self):
        """
        A gap starts a summary round at once; another gap within
        C{gap_summary_interval_s} waits for the first tick after it.
        """
        self.replicator.gap_seen(self.link)
        self.assertEqual(self.output.take(), [("when_ready", self.link)])
        self.finish_own_round()
        self.output.take()
        self.replicator.gap_seen(self.link)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(1.0)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [("when_ready", self.link)])


class WantedTests(SynchronousTestCase):
    """
    L{wanted}: what an answer sends for one feed.
    """

    def test_table(self):
        """
        Nothing named: everything; a seq: what is above it; a hole: the
        run from c + 1 (bounded by h - 1) and what is above h; a hole
        this node lacks too: nothing in it.
        """
        self.assertEqual(wanted(None, 3, 3), (None, 0))
        self.assertEqual(wanted(3, 5, 5), (None, 3))
        self.assertEqual(wanted(5, 5, 5), (None, None))
        self.assertEqual(wanted(9, 5, 5), (None, None))
        self.assertEqual(wanted([0, 10], 10, 10), ((1, 9), None))
        self.assertEqual(wanted([0, 10], 0, 10), ((1, 9), None))
        self.assertEqual(wanted([0, 10], 0, 12), ((1, 9), 10))
        self.assertEqual(wanted([3, 4], 9, 9), (None, 4))


class BudgetTests(Fixture):
    """
    Per-link budgets of ihave, ihave sync, graft and prune, and the
    catch-up window that only this node's own rounds open.
    """

    def test_graft_is_deduplicated(self):
        """
        A graft naming one id 500 times asks the producer for it once.
        """
        self.make()
        self.output.take()
        entry_id = "ab" * 32
        self.replicator.rx_frame(self.link, {"type": "graft", "ids": [entry_id] * 500})
        self.assertEqual(self.output.take(), [("graft", self.link, [entry_id])])

    def test_graft_ids_over_budget_dropped(self):
        """
        Beyond 8,000 graft ids at once, grafts are dropped (not queued).
        """
        self.make()
        self.output.take()
        for n in range(17):
            ids = [author(n * 500 + i) for i in range(500)]
            self.replicator.rx_frame(self.link, {"type": "graft", "ids": ids})
        self.assertEqual(len([c for c in self.output.take() if c[0] == "graft"]), 16)

    def test_prune_over_budget_ignored(self):
        """
        Beyond 50 prunes at once, a prune no longer makes the link lazy.
        """
        self.make()
        for _ in range(50):
            self.replicator.rx_frame(self.link, {"type": "prune"})
        self.replicator.rx_frame(self.link, {"type": "graft", "ids": ["ab" * 32]})
        self.replicator.rx_frame(self.link, {"type": "prune"})
        self.assertEqual(self.replicator.entry_added("cd" * 32, None), [self.link])

    def test_ihave_ids_over_budget_dropped(self):
        """
        Beyond 50,000 ihave ids at once, announcements are not looked at.
        """
        self.make()
        looked = []
        self.output.holds = lambda entry_id: looked.append(entry_id) or True
        for n in range(101):
            ids = [author(n * 500 + i) for i in range(500)]
            self.replicator.rx_frame(self.link, {"type": "ihave", "ids": ids})
        self.assertEqual(len(looked), 50_000)

    def test_missing_ids_bounded_per_link(self):
        """
        One link announcing 10,000 bogus ids fills only its share of the
        missing table: an honest link's announcement is still tracked.
        """
        self.make()
        self.replicator.link_up("honest")
        for n in range(20):
            ids = [author(n * 500 + i) for i in range(500)]
            self.replicator.rx_frame(self.link, {"type": "ihave", "ids": ids})
        self.assertEqual(len(self.replicator.missing), MAX_MISSING_PER_LINK)
        real = "cd" * 32
        self.replicator.rx_frame("honest", {"type": "ihave", "ids": [real]})
        self.assertIn(real, self.replicator.missing)
        self.replicator.link_down(self.link)
        self.assertEqual(list(self.replicator.missing), [real])

    def test_sync_ihave_frames_over_budget_dropped(self):
        """
        Beyond 20 C{ihave sync} frames at once, they are not looked at.
        """
        self.make(held=["ab" * 32])
        looked = []
        holds = self.output.holds
        self.output.holds = lambda entry_id: looked.append(entry_id) or holds(entry_id)
        for _ in range(30):
            self.replicator.rx_frame(self.link, {"type": "ihave", "ids": ["ab" * 32],
                                                 "sync": True})
        self.assertEqual(len(looked), 20)

    def test_peer_cannot_keep_catch_up_window_open(self):
        """
        C{ihave sync} naming unknown ids, once a second for 60 s, starts at
        most 2 + 60 x 0.2 summary rounds (each opening the catch-up window
        with C{solicit}), not one a second; each round ends with
        C{settle}, which closes the window shortly after.
        """
        self.make()
        self.finish_own_round()
        self.output.take()
        for _ in range(60):
            self.clock.advance(1.0)
            self.replicator.rx_frame(self.link, {"type": "ihave", "ids": ["ab" * 32],
                                                 "sync": True})
            self.replicator.tick()
            self.finish_own_round()
        calls = self.output.take()
        # A round's pages each open the window; its first page is the
        # first slice's (after null).
        rounds = [c for c in calls if c[0] == "send" and c[2]["type"] == "summary"
                  and c[2]["after"] is None]
        self.assertLessEqual(len(rounds), 2 + 60 * 0.2 + 1)
        self.assertGreaterEqual(len(rounds), 10)
        self.assertEqual(calls[-1][0], "settle")

    def test_over_budget_is_one_escaped_log_line(self):
        """
        A peer hammering the prune budget gets one log line per interval
        (not one per frame), with its name escaped.
        """
        self.make()
        lines = []

        class Recorder:
            def warn(self, format, **fields):
                lines.append(format.format(**fields))
        self.patch(self.replicator, "log", Recorder())

        class Link:
            def describe(self):
                return "evil\x1b[2J (abcd1234) at ?"
        link = Link()
        self.replicator.link_up(link)
        for _ in range(500):
            self.replicator.rx_frame(link, {"type": "prune"})
        self.assertEqual(lines, ["dropping prune from evil\\x1b[2J (abcd1234) at ?:"
                                 " over its per-link budget"])


class RecordingOutputConformanceTests(OutputConformance, SynchronousTestCase):
    """
    The recording fake keeps the contract of the output it stands for, so
    what the tests above learn from it holds for the node.
    """

    def make_harness(self, entries):
        heads, contiguous = {}, {}
        for entry in sorted(entries, key=lambda e: (e.author, e.seq)):
            heads[entry.author] = entry.seq
            if entry.seq == contiguous.get(entry.author, 0) + 1:
                contiguous[entry.author] = entry.seq
        rows = [(a, contiguous.get(a, 0), head) for a, head in heads.items()]
        output = RecordingOutput(rows, [entry.id for entry in entries])

        def pump():
            while output.actions or output.answers:
                output.run_actions()
                output.finish_answers()

        def sent():
            frames = [c[2] for c in output.calls if c[0] == "send"]
            output.calls = []
            return frames

        return Harness(output, "link-1", pump, sent)


class AdaptiveGraftTimeoutTests(Fixture):
    """
    The graft timeout follows how late pushed copies arrive after their
    announcement (on a loaded machine), within its bounds.
    """

    def setUp(self):
        self.make()
        self.finish_own_round()
        self.output.take()
        self.other = "link-2"
        self.replicator.link_up(self.other)
        self.output.take()

    def late_copy(self, number, late_s):
        """
        Entry C{number} is announced on C{self.link}, and its pushed copy
        arrives on the other link C{late_s} later, ungrafted.
        """
        entry_id = f"{number:064x}"
        self.replicator.rx_frame(self.link, wire.ihave([entry_id]))
        self.clock.advance(late_s)
        self.replicator.entry_added(entry_id, self.other)

    def grafts(self):
        return [c for c in self.output.take() if c[0] == "send" and c[2]["type"] == "graft"]

    def test_starts_at_the_configured_timeout(self):
        self.assertEqual(self.replicator.graft_timeout_s(), 0.05)

    def test_late_copies_are_not_grafted(self):
        """
        After copies arrived 0.9 s after their announcement twice (the
        estimate rises half way each time: 0.45, 0.675 s), the timeout is
        1.35 s: an entry announced now is not grafted at 1.2 s (it would
        be with the fixed 1 s), but is at 1.4 s.
        """
        self.late_copy(1, 0.9)
        self.late_copy(2, 0.9)
        self.assertAlmostEqual(self.replicator.late_s, 0.675)
        self.assertAlmostEqual(self.replicator.graft_timeout_s(), 1.35)
        self.replicator.rx_frame(self.link, wire.ihave(["ab" * 32]))
        self.clock.advance(1.2)
        self.replicator.tick()
        self.assertEqual(self.grafts(), [])
        self.clock.advance(0.2)
        self.replicator.tick()
        self.assertEqual(self.grafts(), [("send", self.link, wire.graft(["ab" * 32]))])
        self.assertEqual(self.replicator.counts["grafted"], 1)

    def test_bounded(self):
        """
        However late copies come, an entry is grafted within
        C{max_graft_timeout_s} (3 s).
        """
        for number in range(20):
            self.late_copy(number, 30.0)
        self.assertEqual(self.replicator.graft_timeout_s(), 3.0)

    def test_falls_slowly(self):
        """
        Prompt copies bring the estimate down a sixteenth of the way each.
        """
        self.late_copy(1, 4.0)
        self.assertEqual(self.replicator.late_s, 2.0)
        self.late_copy(2, 0.0)
        self.assertEqual(self.replicator.late_s, 2.0 - 2.0 / 16)
        self.assertEqual(self.replicator.counts["late_arrivals"], 2)

    def test_grafted_arrivals_are_not_samples(self):
        """
        An entry that arrives after it was grafted says nothing about how
        late copies are (it may be the graft's answer).
        """
        self.replicator.rx_frame(self.link, wire.ihave(["ab" * 32]))
        self.clock.advance(1.0)
        self.replicator.tick()
        self.clock.advance(0.5)
        self.replicator.entry_added("ab" * 32, self.link)
        self.assertEqual(self.replicator.late_s, 0.0)


class UnderLoadTests(Fixture):
    """
    What keeps late copies from turning into more copies: an announced
    entry is pushed on even when it came as a graft's answer, and an
    C{ihave sync} pulls only what is still lacking after the graft timeout.
    """

    ENTRY = "cd" * 32

    def setUp(self):
        self.make()
        self.finish_own_round()
        self.other = "link-2"
        self.replicator.link_up(self.other)
        self.output.run_actions()
        self.finish_own_round()
        self.output.take()

    def test_grafted_entry_is_pushed_on(self):
        """
        An entry announced on a lazy link that arrives marked C{sync} (the
        answer to a graft) is pushed on the eager links like any live
        entry, not only announced as catch-up.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY]))
        self.assertEqual(self.replicator.entry_added(self.ENTRY, self.link, live=False),
                         [self.other])
        self.replicator.tick()
        self.assertEqual(self.output.frames("ihave"), [])

    def test_unannounced_catch_up_is_not_pushed(self):
        self.assertEqual(self.replicator.entry_added(self.ENTRY, self.link, live=False), [])

    def test_sync_ihave_waits_for_late_copies(self):
        """
        An C{ihave sync} naming an entry not held starts no round while a
        late copy may still come; when it came within the graft timeout,
        none at all.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY], sync=True))
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(0.5)
        self.output.held.add(self.ENTRY)
        self.clock.advance(0.5)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.assertEqual(self.replicator.counts["gap_rounds"], 0)

    def test_sync_ihave_pulls_what_is_still_lacking(self):
        """
        Still lacking after the graft timeout: a summary round with the
        link that announced it.
        """
        self.replicator.rx_frame(self.link, wire.ihave([self.ENTRY], sync=True))
        self.clock.advance(0.9)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [])
        self.clock.advance(0.1)
        self.replicator.tick()
        self.assertEqual(self.output.take(), [("when_ready", self.link)])
        self.assertEqual(self.replicator.counts["gap_rounds"], 1)

    def test_sync_ids_waiting_are_bounded(self):
        """
        At most C{MAX_IDS_PER_FRAME} (500) ids of C{ihave sync} frames
        wait per link, however many frames name unknown ids.
        """
        for frame in range(5):
            ids = [f"{frame:032x}{i:032x}" for i in range(500)]
            self.replicator.rx_frame(self.link, wire.ihave(ids, sync=True))
        self.assertEqual(len(self.replicator._links[self.link].sync_check), 500)
