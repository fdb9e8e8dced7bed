"""
Tests for L{p2pchat.log.verifier}: signatures of received entries checked in
batches off the reactor thread, results applied in arrival order, with a
bounded number in flight.  The thread pool is replaced by a fake that
records each call and fires when the test says.
"""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log import verifier as verifier_module
from p2pchat.log.entry import Entry, InvalidEntry, create_entry, parse_entry
from p2pchat.log.identity import Identity
from p2pchat.log.verifier import InlineVerifier, ThreadedVerifier
from p2pchat.mesh import wire
from p2pchat.mesh.raw_entry import lazy_entry_frame
from tests.nodes import Network


class FakeThreads:
    """
    A stand-in for C{deferToThreadPool}: records C{(f, args, deferred)}
    and runs C{f} only when L{fire} is called.
    """

    def __init__(self):
        self.calls = []
        self.fired = set()

    def __call__(self, f, *args):
        d = Deferred()
        self.calls.append((f, args, d))
        return d

    def fire(self, index):
        f, args, d = self.calls[index]
        d.callback(f(*args))
        self.fired.add(index)

    @property
    def submitted(self):
        """
        Every candidate sent to a thread to be verified, in order.
        """
        return [
            candidate for f, args, _ in self.calls if f is verifier_module.verify_batch
            for candidate in args[0]
        ]

    def fire_all(self, settle=lambda: None):
        """
        Fire every call not yet fired, and the calls that makes, until
        none is left; C{settle} runs after each.
        """
        while len(self.fired) < len(self.calls):
            self.fire(min(set(range(len(self.calls))) - self.fired))
            settle()


class FakeLink:
    def __init__(self):
        self.holds = []

    def hold(self, delay_s):
        self.holds.append(delay_s)


def candidates(count, forged=()):
    """
    C{count} parsed one-entry feeds; those whose index is in C{forged}
    carry a signature that does not match.
    """
    result = []
    for i in range(count):
        body = {"name": "a", "text": str(i)}
        entry = create_entry(Identity.generate(), 1, None, 1, 0, "chat", body)
        wire_entry = entry.to_wire()
        if i in forged:
            wire_entry = dict(wire_entry, body={"name": "a", "text": "tampered"})
        result.append(parse_entry(wire_entry))
    return result


class VerifierFixture:
    """
    A L{ThreadedVerifier} on a fake pool and a L{Clock}, recording what
    it is done with; C{inline} is its default C{inline}.
    """

    inline = 0  # the threaded path; the inline one: InlineBatchTests

    def setUp(self):
        self.clock = Clock()
        self.threads = FakeThreads()
        self.done = []

    def make(self, **kwargs):
        def done(candidate, entry, error, source, live):
            self.done.append((candidate, entry, error, source, live))
            return entry is not None

        kwargs.setdefault("inline", self.inline)
        return ThreadedVerifier(done, self.threads, self.clock.callLater, **kwargs)


class ThreadedVerifierTests(VerifierFixture, SynchronousTestCase):

    def test_nothing_verified_on_the_calling_thread(self):
        """
        A submitted entry is sent to the thread on the next reactor turn,
        with every other entry of this turn, and its result comes back
        only when the thread is done.
        """
        verifier = self.make()
        items = candidates(3)
        for candidate in items:
            self.assertTrue(verifier.submit(candidate, FakeLink(), True))
        self.assertEqual(self.threads.calls, [])
        self.clock.advance(0)
        self.assertEqual(len(self.threads.calls), 1)
        self.assertIs(self.threads.calls[0][0], verifier_module.verify_batch)
        self.assertEqual(self.threads.submitted, items)
        self.assertEqual(self.done, [])
        self.threads.fire(0)
        self.assertEqual([c for c, *_ in self.done], items)
        self.assertTrue(all(isinstance(entry, Entry) for _, entry, *_ in self.done))

    def test_results_applied_in_arrival_order(self):
        """
        When a later batch comes back first, its results wait until every
        earlier entry's result has been applied.
        """
        verifier = self.make(batch=2)
        items = candidates(4)
        links = [FakeLink() for _ in items]
        for candidate, link in zip(items, links):
            verifier.submit(candidate, link, False)
        self.assertEqual(len(self.threads.calls), 2)
        self.threads.fire(1)
        self.assertEqual(self.done, [])
        self.assertEqual(verifier.in_flight, 4)
        self.threads.fire(0)
        self.assertEqual([c for c, *_ in self.done], items)
        self.assertEqual([source for *_, source, _ in self.done], links)
        self.assertEqual(verifier.in_flight, 0)

    def test_batches_in_threads_bounded(self):
        """
        At most L{verifier_module.MAX_BATCHES_IN_THREADS} batches are in
        the pool at once; the next goes when one comes back.
        """
        verifier = self.make(batch=1)
        items = candidates(verifier_module.MAX_BATCHES_IN_THREADS + 1)
        for candidate in items:
            verifier.submit(candidate, FakeLink(), True)
        self.clock.advance(0)
        self.assertEqual(len(self.threads.calls), verifier_module.MAX_BATCHES_IN_THREADS)
        self.threads.fire(0)
        self.assertEqual(len(self.threads.calls), verifier_module.MAX_BATCHES_IN_THREADS + 1)

    def test_invalid_entry_reported_alone(self):
        """
        A bad signature comes back as an L{InvalidEntry} for that entry
        only; the others of its batch are verified.
        """
        verifier = self.make()
        items = candidates(3, forged={1})
        for candidate in items:
            verifier.submit(candidate, FakeLink(), True)
        self.clock.advance(0)
        self.threads.fire(0)
        entries = [entry for _, entry, _, _, _ in self.done]
        errors = [error for _, _, error, _, _ in self.done]
        self.assertIsInstance(entries[0], Entry)
        self.assertIsNone(entries[1])
        self.assertIsInstance(errors[1], InvalidEntry)
        self.assertEqual(str(errors[1]), "bad signature")
        self.assertIsInstance(entries[2], Entry)
        self.assertEqual([errors[0], errors[2]], [None, None])

    def test_ids_being_verified(self):
        """
        An entry counts as being verified from submission until its result
        has been applied.
        """
        verifier = self.make()
        [candidate] = candidates(1)
        self.assertFalse(verifier.verifying(candidate.id))
        verifier.submit(candidate, FakeLink(), True)
        self.assertTrue(verifier.verifying(candidate.id))
        self.clock.advance(0)
        self.assertTrue(verifier.verifying(candidate.id))
        self.threads.fire(0)
        self.assertFalse(verifier.verifying(candidate.id))

    def test_full_budget_holds_the_link(self):
        """
        The entry that fills the in-flight budget holds the link it came
        on (its further data waits in its socket); entries before it do
        not.
        """
        verifier = self.make(budget=3, hold_s=0.25)
        links = [FakeLink() for _ in range(4)]
        for candidate, link in zip(candidates(4), links):
            verifier.submit(candidate, link, True)
        self.assertEqual([link.holds for link in links], [[], [], [0.25], [0.25]])
        self.clock.advance(0)
        self.threads.fire(0)
        self.assertEqual(verifier.in_flight, 0)
        late = FakeLink()
        verifier.submit(candidates(1)[0], late, True)
        self.assertEqual(late.holds, [])

    def test_past_overshoot_slowed_not_dropped(self):
        """
        Past the budget and its overshoot, an entry is still taken (a
        flood of valid entries is slowed, never lost) but its link is held
        ten times as long, so the trickle past the overshoot stays slow.
        """
        verifier = self.make(budget=2, overshoot=1, hold_s=0.25)
        items = candidates(4)
        links = [FakeLink() for _ in items]
        taken = [verifier.submit(candidate, link, True) for candidate, link in zip(items, links)]
        self.assertEqual(taken, [True, True, True, True])
        self.assertEqual([link.holds for link in links], [[], [0.25], [0.25], [2.5]])
        self.assertTrue(verifier.verifying(items[3].id))
        self.assertEqual(verifier.in_flight, 4)
        self.clock.advance(0)
        self.assertEqual(self.threads.submitted, items)

    def test_full_byte_budget_holds_the_link(self):
        """
        Entries whose signed bytes fill the byte budget hold the link the
        last came on, however few they are.
        """
        items = candidates(3)
        verifier = self.make(bytes_budget=items[0].size + items[1].size, hold_s=0.5)
        links = [FakeLink() for _ in items]
        for candidate, link in zip(items, links):
            verifier.submit(candidate, link, True)
        self.assertEqual([link.holds for link in links], [[], [0.5], [0.5]])
        self.clock.advance(0)
        self.threads.fire(0)
        self.assertEqual(verifier.bytes_in_flight, 0)

    def test_stop_drops_what_is_in_verification(self):
        """
        After stop(), entries queued or in the thread are forgotten and
        results that come back later are ignored.
        """
        verifier = self.make(batch=2)
        for candidate in candidates(3):
            verifier.submit(candidate, FakeLink(), True)
        self.assertEqual(verifier.stop(), 3)
        self.threads.fire(0)
        self.clock.advance(0)
        self.assertEqual(self.done, [])
        self.assertEqual(len(self.threads.calls), 1)
        self.assertEqual(verifier.in_flight, 0)
        self.assertFalse(verifier.submit(candidates(1)[0], FakeLink(), True))

    def test_failed_batch_dropped(self):
        """
        A batch the pool could not run is logged and its entries dropped;
        later entries still come back in order.
        """
        verifier = self.make(batch=1)
        items = candidates(2)
        for candidate in items:
            verifier.submit(candidate, FakeLink(), True)
        self.threads.calls[0][2].errback(RuntimeError("pool broke"))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.threads.fire(1)
        self.assertEqual([c for c, *_ in self.done], [items[1]])
        self.assertEqual(verifier.in_flight, 0)


class InlineVerifierTests(SynchronousTestCase):
    def test_verifies_at_once(self):
        done = []
        verifier = InlineVerifier(lambda *args: done.append(args) or True)
        valid, forged = candidates(2, forged={1})
        self.assertTrue(verifier.submit(valid, None, True))
        verifier.submit(forged, None, True)
        self.assertIsInstance(done[0][1], Entry)
        self.assertIsInstance(done[1][2], InvalidEntry)
        self.assertFalse(verifier.verifying(valid.id))


class InlineBatchTests(VerifierFixture, SynchronousTestCase):
    """
    A few entries (live chat) are checked on the calling thread while
    nothing else is in the verifier; everything else still goes to the
    pool, in order.
    """

    inline = verifier_module.INLINE_BATCH

    def test_few_entries_with_an_idle_pool_are_checked_inline(self):
        """
        Up to C{inline} entries (raw or parsed) submitted in one turn,
        with no batch in the pool, are decoded and verified on the next
        turn without the pool; a forged one is refused all the same.
        """
        verifier = self.make(inline=4)
        good, forged = candidates(2, forged=(1,))
        line = wire.encode_frame(wire.entry_frame(good._wire))
        verifier.submit_raw(lazy_entry_frame(line)["entry"], FakeLink(), True)
        verifier.submit(forged, FakeLink(), True)
        self.assertEqual(self.done, [])
        self.clock.advance(0)
        self.assertEqual(self.threads.calls, [])
        self.assertEqual([entry.id if entry else None for _, entry, *_ in self.done],
                         [good.id, None])
        self.assertIsInstance(self.done[1][2], InvalidEntry)
        self.assertEqual(verifier.in_flight, 0)

    def test_large_entries_go_to_the_pool(self):
        """
        A few entries of more than L{verifier_module.INLINE_BYTES} in all
        go to the pool: the reactor thread checks only small ones.
        """
        verifier = self.make()
        text = "x" * 4000
        for _ in range(verifier_module.INLINE_BYTES // 4000):
            entry = create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                                 {"name": "a", "text": text})
            verifier.submit(parse_entry(entry.to_wire()), FakeLink(), True)
        self.clock.advance(0)
        self.assertEqual([len(args[0]) for _, args, _ in self.threads.calls], [4])
        self.assertEqual(self.done, [])

    def test_more_entries_go_to_the_pool(self):
        """
        More than C{inline} entries in a turn go to the pool.
        """
        verifier = self.make(inline=4)
        for candidate in candidates(5):
            verifier.submit(candidate, FakeLink(), True)
        self.clock.advance(0)
        self.assertEqual([len(args[0]) for _, args, _ in self.threads.calls], [5])
        self.assertEqual(self.done, [])

    def test_backlog_goes_to_the_pool(self):
        """
        With more than C{inline} entries in the verifier, even a small
        batch goes to the pool: a decoded batch of which C{admit} takes
        only two (a flood of new authors over its budget) left a small
        batch to verify while the rest still waited, and checking those
        here (under a flood, others' chat then took 150-575 ms instead of
        6-60 ms) is what the pool is for.
        """
        verifier = self.make(inline=4)
        items = candidates(10)
        admitted = {candidate.id for candidate in items[:2]}
        verifier.admit = lambda candidate, source, live: candidate.id in admitted
        for candidate in items:
            line = wire.encode_frame(wire.entry_frame(candidate._wire))
            verifier.submit_raw(lazy_entry_frame(line)["entry"], FakeLink(), True)
        self.clock.advance(0)
        self.threads.fire(0)
        self.assertEqual(
            [(f, len(args[0])) for f, args, _ in self.threads.calls],
            [(verifier_module.decode_batch, 10), (verifier_module.verify_batch, 2)])
        self.assertEqual(self.done, [])

    def test_busy_pool_keeps_the_order(self):
        """
        While a batch is in the pool, a small one goes to the pool too,
        and results are applied in arrival order.
        """
        verifier = self.make(inline=4)
        first, second = candidates(5), candidates(1)
        for candidate in first:
            verifier.submit(candidate, FakeLink(), True)
        self.clock.advance(0)
        verifier.submit(second[0], FakeLink(), True)
        self.clock.advance(0)
        self.assertEqual([len(args[0]) for _, args, _ in self.threads.calls], [5, 1])
        self.threads.fire(1)
        self.assertEqual(self.done, [])
        self.threads.fire(0)
        self.assertEqual([c for c, *_ in self.done], first + second)


class NodeWithThreadedVerifierTests(SynchronousTestCase):
    """
    A L{ChatNode} whose received entries are verified by a
    L{ThreadedVerifier} on a fake thread pool.
    """

    def setUp(self):
        self.net = Network(self)
        self.threads = FakeThreads()
        clock = self.net.clock
        self.bob = self.net.node(
            "bob", verifier=lambda done: ThreadedVerifier(
                done, self.threads, clock.callLater, inline=0)
        )

    def link(self, name):
        other = self.net.node(name)
        bob_side, other_side = self.net.link(self.bob, other)
        other_side.node_id = other.node_id
        return bob_side, other_side

    def send(self, other_side, entries):
        for entry in entries:
            other_side.send_frame(wire.entry_frame(entry))
        self.net.settle()

    def test_stored_only_after_verification(self):
        """
        A received entry is stored once its verification comes back.
        """
        _, alice_side = self.link("alice")
        [entry] = candidates(1)
        self.send(alice_side, [entry._wire])
        self.assertEqual(self.bob.chat.status()["messages"], 0)
        # Decoded in a thread, then verified in a thread.
        self.assertIs(self.threads.calls[0][0], verifier_module.decode_batch)
        self.threads.fire(0)
        self.net.settle()
        self.assertEqual(self.bob.chat.status()["messages"], 0)
        # Being verified counts as held: replication does not graft it.
        self.assertTrue(self.bob.feed.holds(entry.id))
        self.assertIs(self.threads.calls[1][0], verifier_module.verify_batch)
        self.threads.fire(1)
        self.net.settle()
        self.assertEqual(self.bob.chat.status()["messages"], 1)

    def test_copy_being_verified_is_known(self):
        """
        A second copy of an entry that is being verified (from another
        link) is a duplicate: it is not verified again.
        """
        _, alice_side = self.link("alice")
        _, carol_side = self.link("carol")
        [entry] = [c._wire for c in candidates(1)]
        self.send(alice_side, [entry])
        self.threads.fire(0)
        self.net.settle()
        # alice's copy is being verified when carol's is decoded.
        self.send(carol_side, [entry])
        self.threads.fire(2)
        self.net.settle()
        self.assertEqual(len(self.threads.submitted), 1)
        self.assertEqual(self.bob.feed.duplicates_received, 1)
        self.threads.fire_all(self.net.settle)
        self.assertEqual(len(self.threads.submitted), 1)
        self.assertEqual(self.bob.chat.status()["messages"], 1)

    def test_bad_signature_closes_only_its_link(self):
        """
        A forged entry found in the thread closes the link it came on when
        its result is applied; a valid entry from another link is stored.
        """
        _, alice_side = self.link("alice")
        _, carol_side = self.link("carol")
        forged, valid = candidates(2, forged={0})
        alice_side.send_frame(wire.entry_frame(forged._wire))
        carol_side.send_frame(wire.entry_frame(valid._wire))
        self.net.settle()
        self.assertEqual(len(self.bob.links), 2)
        self.threads.fire_all(self.net.settle)
        self.assertEqual([link.remote_id for link in self.bob.links], [carol_side.node_id])
        self.assertEqual(self.bob.chat.status()["messages"], 1)
        self.assertTrue(self.bob.feed.holds(valid.id))
        self.assertFalse(self.bob.feed.holds(forged.id))

    def test_stop_commits_acknowledged_drops_in_verification(self):
        """
        stop() commits every verified entry queued for storing; entries
        still in verification are dropped.
        """
        _, alice_side = self.link("alice")
        first, second = candidates(2)
        self.send(alice_side, [first._wire])
        self.threads.fire(0)
        self.net.settle()
        self.send(alice_side, [second._wire])
        self.assertEqual(len(self.threads.calls), 3)
        # first is verified; second is decoded, not yet verified.
        self.threads.fire(1)
        self.threads.fire(2)
        self.net.settle()
        self.bob.stop()
        self.threads.fire_all()
        self.assertTrue(self.bob.feed.holds(first.id))
        self.assertFalse(self.bob.feed.holds(second.id))
