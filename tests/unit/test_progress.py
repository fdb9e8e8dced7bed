"""
Tests for L{p2pchat.log.progress}: what a catch-up knows is missing, how
fast it goes, and when it ends; on a L{Clock}, with recorded claims.
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log import progress
from p2pchat.log.progress import CLAIM_GRACE_S, CatchUpProgress, describe

A, B, C = "a" * 64, "b" * 64, "c" * 64


class CatchUpProgressTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.held = {}
        self.tracker = CatchUpProgress(self.clock, lambda author: self.held.get(author, 0))

    def commit(self, author, seq):
        self.held[author] = max(self.held.get(author, 0), seq)
        self.tracker.committed(author, seq)

    def test_idle(self):
        """
        Before any link, nothing is missing and nothing is catching up.
        """
        self.assertEqual(self.tracker.snapshot(), {
            "catching_up": False, "received": 0, "known_missing": 0, "sources": 0,
            "rate": 0.0, "eta_s": None,
        })

    def test_claims_count_beyond_what_is_held(self):
        """
        A peer's summary counts, per author, its highest seq (C{c}, or
        C{h} of C{[c, h]}) beyond the highest seq held here; the highest
        claim of two links counts once.
        """
        self.held[A] = 10
        self.tracker.claimed("L1", {A: 25, B: [3, 7], C: 0})
        self.assertEqual(self.tracker.known_missing, 15 + 7)
        self.tracker.claimed("L2", {A: 30, B: 5})
        self.assertEqual(self.tracker.known_missing, 20 + 7)
        self.assertEqual(self.tracker.sources, 2)
        self.assertTrue(self.tracker.catching_up)

    def test_commits_bring_it_down_and_end_it(self):
        """
        Each committed entry of a claimed author brings the count down;
        when all are held the catch-up has ended, and C{received} counted
        them.
        """
        self.tracker.claimed("L1", {A: 3, B: 2})
        for author, seq in [(A, 1), (A, 2), (B, 1), (A, 3), (B, 2)]:
            self.commit(author, seq)
        self.commit(C, 1)  # not claimed: not counted
        self.assertEqual(self.tracker.known_missing, 0)
        self.assertFalse(self.tracker.catching_up)
        self.assertEqual(self.tracker.received, 5)
        self.assertEqual(self.tracker.sources, 0)

    def test_first_round_is_catching_up(self):
        """
        A link whose first summary round has not ended keeps the node
        catching up, even before its summary arrived.
        """
        self.tracker.link_up("L1")
        self.assertTrue(self.tracker.catching_up)
        self.assertEqual(self.tracker.sources, 1)
        self.tracker.round_done("L1")
        self.assertFalse(self.tracker.catching_up)

    def test_link_down_drops_its_claims(self):
        """
        The claims of a link die with it.
        """
        self.tracker.link_up("L1")
        self.tracker.claimed("L1", {A: 100})
        self.tracker.claimed("L2", {B: 5})
        self.tracker.link_down("L1")
        self.assertEqual(self.tracker.known_missing, 5)
        self.assertEqual(self.tracker.sources, 1)

    def test_claim_of_two_links_outlives_one(self):
        """
        An author's top claimed by two links stays missing when one of
        them goes down (the other still streams it), and is dropped when
        both are gone; a higher claim replaces the claimers.
        """
        self.tracker.claimed("L1", {A: 10, B: 4})
        self.tracker.claimed("L2", {A: 10, B: 6})
        self.tracker.link_down("L1")
        self.assertEqual(self.tracker.known_missing, 16)
        self.assertEqual(self.tracker.sources, 1)
        self.tracker.claimed("L3", {A: 10})
        self.tracker.link_down("L2")
        self.assertEqual(self.tracker.known_missing, 10)
        self.tracker.link_down("L3")
        self.assertEqual(self.tracker.known_missing, 0)

    def test_lying_claims_expire_after_the_round(self):
        """
        A peer that claims entries it never sends delays the end of the
        catch-up until L{CLAIM_GRACE_S} after its round ended, not for
        ever; entries arriving within the grace are counted as usual.
        """
        self.tracker.link_up("liar")
        self.tracker.claimed("liar", {A: 1_000_000, B: 2})
        self.tracker.round_done("liar")
        self.commit(B, 1)
        self.commit(B, 2)
        self.clock.advance(CLAIM_GRACE_S - 0.1)
        self.assertEqual(self.tracker.known_missing, 1_000_000)
        self.assertTrue(self.tracker.catching_up)
        self.clock.advance(0.1)
        self.assertEqual(self.tracker.known_missing, 0)
        self.assertFalse(self.tracker.catching_up)

    def test_new_round_postpones_expiry(self):
        """
        Another round ended with the same link restarts its grace.
        """
        self.tracker.claimed("L1", {A: 5})
        self.tracker.round_done("L1")
        self.clock.advance(CLAIM_GRACE_S - 1)
        self.tracker.round_done("L1")
        self.clock.advance(CLAIM_GRACE_S - 1)
        self.assertEqual(self.tracker.known_missing, 5)
        self.clock.advance(1)
        self.assertEqual(self.tracker.known_missing, 0)

    def test_authors_tracked_are_bounded(self):
        """
        Beyond L{progress.MAX_AUTHORS} authors, new ones are not tracked
        (a liar inventing authors costs bounded memory).
        """
        self.patch(progress, "MAX_AUTHORS", 2)
        self.tracker.claimed("L1", {A: 1, B: 1, C: 1})
        self.assertEqual(self.tracker.known_missing, 2)
        self.tracker.claimed("L1", {A: 4})
        self.assertEqual(self.tracker.known_missing, 5)

    def test_rate_and_eta(self):
        """
        The rate is the entries committed over the last few seconds; the
        time left is what is missing at that rate.
        """
        self.tracker.claimed("L1", {A: 1000})
        for _second in range(4):
            for _ in range(100):
                self.commit(A, self.held.get(A, 0) + 1)
            self.clock.advance(1)
        self.assertEqual(self.tracker.rate(), 100.0)
        self.assertEqual(self.tracker.eta(), 6.0)
        snapshot = self.tracker.snapshot()
        self.assertEqual(
            (snapshot["received"], snapshot["known_missing"], snapshot["eta_s"]),
            (400, 600, 6.0),
        )
        self.clock.advance(10)
        self.assertEqual(self.tracker.rate(), 0.0)
        self.assertIsNone(self.tracker.eta())

    def test_received_restarts_with_a_new_catch_up(self):
        """
        C{received} counts one catch-up: it starts again from 0 when a
        catch-up begins after the last one ended.
        """
        self.tracker.claimed("L1", {A: 2})
        self.commit(A, 1)
        self.commit(A, 2)
        self.assertEqual(self.tracker.received, 2)
        self.tracker.claimed("L1", {A: 3})
        self.assertEqual(self.tracker.received, 0)
        self.commit(A, 3)
        self.assertEqual(self.tracker.received, 1)


class DescribeTests(SynchronousTestCase):
    def test_line(self):
        """
        The progress line says what was received, of about how many, from
        how many peers, and the time left.
        """
        self.assertEqual(
            describe({"received": 45_000, "known_missing": 55_000, "sources": 3,
                      "eta_s": 12.4}),
            "catching up: 45,000 of about 100,000 entries from 3 peers, ~12 s left",
        )
        self.assertEqual(
            describe({"received": 0, "known_missing": 7, "sources": 1, "eta_s": None}),
            "catching up: 0 of about 7 entries from 1 peer",
        )
        self.assertEqual(
            describe({"received": 1, "known_missing": 1, "sources": 0, "eta_s": 0.2}),
            "catching up: 1 of about 2 entries, ~1 s left",
        )
