"""
Tests for the decoding stage of L{p2pchat.log.verifier.ThreadedVerifier}:
raw entry lines are parsed and checked in batches in a (fake) thread,
admitted on the reactor thread in arrival order, then verified, with
the verifier's budgets counting them from the moment they are read.
"""

import unicodedata

from twisted.internet.task import Clock
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log import verifier as verifier_module
from p2pchat.log.entry import Entry, InvalidEntry, create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.verifier import InlineVerifier, ThreadedVerifier
from p2pchat.mesh import wire
from p2pchat.mesh.raw_entry import lazy_entry_frame
from tests.nodes import Network
from tests.unit.test_verifier import FakeLink, FakeThreads


def raw(wire_entry, sync=False):
    """
    @return: the L{RawEntry} a link hands on for C{wire_entry}.
    """
    return lazy_entry_frame(wire.encode_frame(wire.entry_frame(wire_entry, sync)))["entry"]


def entries(count, text="hi"):
    """
    C{count} signed one-entry feeds, as wire objects.
    """
    return [
        create_entry(Identity.generate(), 1, None, 1, 0, "chat",
                     {"name": "a", "text": f"{text} {i}"}).to_wire()
        for i in range(count)
    ]


def forged(wire_entry):
    return dict(wire_entry, body=dict(wire_entry["body"], text="tampered"))


def upper_sig(wire_entry):
    # Not the one accepted form (hex in lower case): refused unverified.
    return dict(wire_entry, sig=wire_entry["sig"].upper())


def bad_json():
    return lazy_entry_frame(b'{"entry":{"author":' + b'"a",' * 3 + b'},"type":"entry"}')["entry"]


class DecodeStageTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.threads = FakeThreads()
        self.done = []
        self.admitted = []

    def make(self, refuse=(), **kwargs):
        def done(candidate, entry, error, source, live):
            self.done.append((entry and entry.id, error and str(error), source, live))
            return entry is not None

        def admit(candidate, source, live):
            self.admitted.append((candidate.id, source))
            return candidate.id not in refuse

        kwargs.setdefault("inline", 0)  # the threaded path
        verifier = ThreadedVerifier(done, self.threads, self.clock.callLater, **kwargs)
        verifier.admit = admit
        return verifier

    def test_decoded_then_admitted_then_verified(self):
        """
        Raw entries go to a thread to be decoded; back on the reactor
        thread each is admitted in arrival order, and only then goes to
        a thread to be verified; C{done} follows in arrival order.
        """
        verifier = self.make()
        items = entries(3)
        links = [FakeLink() for _ in items]
        for item, link in zip(items, links):
            self.assertTrue(verifier.submit_raw(raw(item), link, False))
        self.clock.advance(0)
        self.assertEqual([c[0] for c in self.threads.calls], [verifier_module.decode_batch])
        self.assertEqual(self.threads.calls[0][1][0], [raw(item) for item in items])
        self.assertEqual(verifier.in_flight, 3)
        self.threads.fire(0)
        ids = [d.id for d in verifier_module.decode_batch([raw(item) for item in items])]
        self.assertEqual(self.admitted, list(zip(ids, links)))
        self.assertEqual(self.done, [])
        self.assertTrue(all(verifier.verifying(i) for i in ids))
        self.assertEqual(
            [c[0] for c in self.threads.calls],
            [verifier_module.decode_batch, verifier_module.verify_batch],
        )
        self.threads.fire(1)
        self.assertEqual(self.done, [(i, None, link, False) for i, link in zip(ids, links)])
        self.assertEqual((verifier.in_flight, verifier.bytes_in_flight), (0, 0))
        self.assertFalse(any(verifier.verifying(i) for i in ids))

    def test_order_kept_across_parsed_and_raw(self):
        """
        A raw entry read before a parsed one is reported first, though
        the parsed one was verified first.
        """
        verifier = self.make()
        first, second = entries(2)
        link = FakeLink()
        verifier.submit_raw(raw(first), link, True)
        [parsed] = verifier_module.decode_batch([raw(second)])
        verifier.submit(parsed, link, True)
        self.clock.advance(0)
        # Verify first (the parsed entry), then decode (the raw one).
        self.assertEqual(
            [c[0] for c in self.threads.calls],
            [verifier_module.verify_batch, verifier_module.decode_batch],
        )
        self.threads.fire(0)
        self.assertEqual(self.done, [])
        self.threads.fire(1)
        self.threads.fire(2)
        [decoded] = verifier_module.decode_batch([raw(first)])
        self.assertEqual([d[0] for d in self.done], [decoded.id, parsed.id])

    def test_malformed_and_non_canonical_refused_rest_lands(self):
        """
        In one batch, a line that is not JSON and an entry whose sig is
        not in its one accepted form are each refused (C{done} with the
        reason, never verified); the entries around them land, in order.
        """
        verifier = self.make()
        good = entries(3)
        batch = [raw(good[0]), bad_json(), raw(good[1]), raw(upper_sig(good[2]))]
        links = [FakeLink() for _ in batch]
        for item, link in zip(batch, links):
            verifier.submit_raw(item, link, True)
        self.clock.advance(0)
        self.threads.fire_all()
        ids = [d.id for d in verifier_module.decode_batch([raw(good[0]), raw(good[1])])]
        self.assertEqual(self.done, [
            (ids[0], None, links[0], True),
            (None, "bad frame: line is not valid JSON", links[1], True),
            (ids[1], None, links[2], True),
            (None, "sig is not 64 bytes of lowercase hex", links[3], True),
        ])
        self.assertEqual(len(self.threads.submitted), 2)

    def test_non_nfc_text_refused(self):
        """
        Chat text in another Unicode normal form than NFC is refused as a
        parsed entry would be.
        """
        verifier = self.make()
        [item] = entries(1, text="caf\u00e9")
        text = unicodedata.normalize("NFD", item["body"]["text"])
        verifier.submit_raw(raw(dict(item, body=dict(item["body"], text=text))), None, True)
        self.clock.advance(0)
        self.threads.fire_all()
        self.assertEqual(self.done, [(None, "chat text is not in Unicode NFC", None, True)])

    def test_bad_signature_refused_rest_lands(self):
        """
        A forged entry in a raw batch comes back as a bad signature; the
        others of its batch land.
        """
        verifier = self.make()
        items = entries(3)
        items[1] = forged(items[1])
        for item in items:
            verifier.submit_raw(raw(item), None, True)
        self.clock.advance(0)
        self.threads.fire_all()
        self.assertEqual([d[1] for d in self.done], [None, "bad signature", None])
        self.assertIsNotNone(self.done[0][0])
        self.assertIsNotNone(self.done[2][0])

    def test_not_admitted_dropped_unverified(self):
        """
        An entry C{admit} refuses (a known id, a new author past its
        link's budget) is neither verified nor reported, and its id does
        not count as being verified.
        """
        items = entries(2)
        dropped, kept = verifier_module.decode_batch([raw(item) for item in items])
        verifier = self.make(refuse={dropped.id})
        for item in items:
            verifier.submit_raw(raw(item), None, True)
        self.clock.advance(0)
        self.threads.fire(0)
        self.assertFalse(verifier.verifying(dropped.id))
        self.assertEqual([c.id for c in self.threads.submitted], [kept.id])
        self.threads.fire(1)
        self.assertEqual([d[0] for d in self.done], [kept.id])
        self.assertEqual(verifier.in_flight, 0)

    def test_budget_counts_raw_entries(self):
        """
        Raw entries count against the entry budget from the moment they
        are read: the one that fills it holds its link, past the
        overshoot a link is held ten times as long, nothing is dropped.
        """
        verifier = self.make(budget=2, overshoot=1, hold_s=0.25)
        items = entries(4)
        links = [FakeLink() for _ in items]
        taken = [verifier.submit_raw(raw(i), link, True) for i, link in zip(items, links)]
        self.assertEqual(taken, [True] * 4)
        self.assertEqual([link.holds for link in links], [[], [0.25], [0.25], [2.5]])
        self.assertEqual(verifier.bytes_in_flight, sum(len(raw(i)) for i in items))
        self.clock.advance(0)
        self.threads.fire_all()
        self.assertEqual(len(self.done), 4)
        self.assertEqual((verifier.in_flight, verifier.bytes_in_flight), (0, 0))

    def test_byte_budget_counts_raw_lines(self):
        """
        The byte budget counts a raw entry's line.
        """
        items = entries(3)
        verifier = self.make(bytes_budget=len(raw(items[0])) + len(raw(items[1])), hold_s=0.5)
        links = [FakeLink() for _ in items]
        for item, link in zip(items, links):
            verifier.submit_raw(raw(item), link, True)
        self.assertEqual([link.holds for link in links], [[], [0.5], [0.5]])

    def test_stop_drops_what_is_being_decoded(self):
        """
        After stop(), decoded batches that come back are ignored.
        """
        verifier = self.make()
        for item in entries(2):
            verifier.submit_raw(raw(item), None, True)
        self.clock.advance(0)
        self.assertEqual(verifier.stop(), 2)
        self.threads.fire(0)
        self.assertEqual((self.admitted, self.done, len(self.threads.calls)), ([], [], 1))


class InlineDecodeTests(SynchronousTestCase):
    def test_decode_admit_verify_at_once(self):
        """
        L{InlineVerifier.submit_raw} decodes, admits and verifies at once.
        """
        done, admitted = [], []
        verifier = InlineVerifier(lambda *args: done.append(args) or args[1] is not None)
        verifier.admit = lambda candidate, source, live: admitted.append(candidate.id) or True
        good, bad = entries(2)
        self.assertTrue(verifier.submit_raw(raw(good), None, True))
        self.assertFalse(verifier.submit_raw(raw(forged(bad)), None, True))
        self.assertFalse(verifier.submit_raw(bad_json(), None, True))
        self.assertEqual(len(admitted), 2)
        self.assertIsInstance(done[0][1], Entry)
        self.assertEqual([str(d[2]) for d in done[1:]],
                         ["bad signature", "bad frame: line is not valid JSON"])
        self.assertIsInstance(done[2][2], InvalidEntry)


class NodeDecodesOffTheReactorTests(SynchronousTestCase):
    """
    A node whose links hand on raw entry lines: a malformed line closes
    its link with one log line when its batch is decoded, and the valid
    entries of the batch (from other links) are stored.
    """

    def setUp(self):
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def test_malformed_line_closes_only_its_link(self):
        net = Network(self)
        threads = FakeThreads()
        bob = net.node(
            "bob", verifier=lambda done: ThreadedVerifier(
                done, threads, net.clock.callLater, inline=0)
        )
        sides = {}
        for name in ("alice", "carol"):
            other = net.node(name)
            _, sides[name] = net.link(bob, other)
            sides[name].node_id = other.node_id
        good = entries(1)[0]
        sides["alice"].transport.write(b'{"entry":{"author":1,},"type":"entry"}\n')
        sides["carol"].send_frame(wire.entry_frame(good, sync=False))
        net.settle()
        self.assertEqual(len(bob.links), 2)
        # Nothing parsed on the reactor thread: both lines wait for decoding.
        self.assertEqual({c[0] for c in threads.calls}, {verifier_module.decode_batch})
        threads.fire_all(net.settle)
        self.assertEqual([link.remote_id for link in bob.links], [sides["carol"].node_id])
        self.assertEqual(bob.chat.status()["messages"], 1)
        refused = [
            formatEvent(event) for event in self.events
            if formatEvent(event).startswith("closing link")
        ]
        self.assertEqual(len(refused), 1)
        self.assertIn("rejected entry: bad frame: line is not valid JSON", refused[0])


class CatchUpBatchTests(SynchronousTestCase):
    def small_batches(self):
        """
        @return: a fake pool, a clock and a threaded verifier on them with
            live batches of 2 and catch-up batches of 5 (never inline).
        """
        threads, clock = FakeThreads(), Clock()
        verifier = ThreadedVerifier(
            lambda *args: True, threads, clock.callLater, batch=2, catchup_batch=5, inline=0
        )
        return threads, clock, verifier

    def test_catch_up_entries_go_in_larger_batches(self):
        """
        Entries that catch the node up (not live) go to the thread in
        batches of up to C{catchup_batch}, so they are committed together;
        live entries in batches of up to C{batch}.
        """
        threads, clock, verifier = self.small_batches()
        parsed = verifier_module.decode_batch([raw(item) for item in entries(9)])
        for candidate in parsed[:6]:
            verifier.submit(candidate, None, False)
        for candidate in parsed[6:]:
            verifier.submit(candidate, None, True)
        clock.advance(0)
        self.assertEqual([len(args[0]) for _, args, _ in threads.calls], [2, 2])
        threads.fire_all()
        sizes = [len(args[0]) for _, args, _ in threads.calls]
        # 2 + 2 dispatched at once (batch reached), then 2 catch-up entries
        # with the live ones after them, at most 2 a batch.
        self.assertEqual(sizes, [2, 2, 2, 2, 1])
        self.assertEqual(verifier.in_flight, 0)

    def test_catch_up_batch_when_threads_busy(self):
        """
        Catch-up entries that wait while the threads are busy go in one
        batch of up to C{catchup_batch}.
        """
        threads, clock, verifier = self.small_batches()
        parsed = verifier_module.decode_batch([raw(item) for item in entries(14)])
        for candidate in parsed[:2]:
            verifier.submit(candidate, None, False)
            clock.advance(0)
        # Both threads busy: these wait, and go 5 at a time.
        for candidate in parsed[2:]:
            verifier.submit(candidate, None, False)
        clock.advance(0)
        threads.fire_all()
        self.assertEqual([len(args[0]) for _, args, _ in threads.calls], [1, 1, 5, 5, 2])
