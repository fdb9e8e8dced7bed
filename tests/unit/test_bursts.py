"""
Tests for bursts of live entries on one link: a burst larger than the
link's transport buffer is pushed whole as the transport drains, in chain
order, instead of being announced past the buffer and grafted a graft
timeout later (a 1,000-line paste took 1.3 s to cross one idle link).
"""

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.entry import create_entry
from p2pchat.log.identity import Identity
from p2pchat.log.streaming import MAX_PUSH_RUNS, EntryStreamer
from tests.nodes import Network


def chain(identity, count, text="x"):
    """
    @return: C{count} entries of C{identity}'s feed, seq 1 to C{count}.
    """
    entries, prev = [], None
    for seq in range(1, count + 1):
        entry = create_entry(identity, seq, prev, seq, 0, "chat", {"name": "a", "text": text})
        entries.append(entry)
        prev = entry.id
    return entries


class FillingLink:
    """
    A link whose transport "fills" every C{room} frames: like a real
    transport, it then pauses its producer, until L{drain}.
    """

    def __init__(self, room):
        self.room = room
        self.frames = []
        self.streamer = None
        self._since_drain = 0

    def send_frame(self, frame):
        self.frames.append(frame)
        self._since_drain += 1
        if self._since_drain == self.room:
            self.streamer.pauseProducing()

    def drain(self):
        self._since_drain = 0
        self.streamer.resumeProducing()


class StreamerPushTests(SynchronousTestCase):
    """
    L{EntryStreamer.push}: live entries queued while the transport is full.
    """

    def setUp(self):
        self.identity = Identity.generate()
        self.entries = chain(self.identity, 450)
        self.reads = []

        def entries_after(author, seq, limit):
            self.reads.append((author, seq, limit))
            return [e for e in self.entries if e.author == author and e.seq > seq][:limit]

        self.clock = Clock()
        self.link = FillingLink(room=100)
        self.streamer = EntryStreamer(self.link, entries_after, self.clock, batch_entries=150)
        self.link.streamer = self.streamer

    def test_burst_is_one_run_sent_as_the_transport_drains(self):
        """
        450 consecutive entries pushed while paused are one run (no entry
        kept in memory); each drain sends what fits, live (not marked
        C{sync}), in chain order, reading the store a batch at a time.
        """
        self.streamer.pauseProducing()
        for entry in self.entries:
            self.assertTrue(self.streamer.push(entry))
        self.assertEqual(self.streamer.push_runs, [(self.identity.node_id, 1, 450)])
        self.clock.advance(0)
        self.assertEqual(self.link.frames, [])
        for sent in (100, 200, 300, 400, 450):
            self.link.drain()
            self.clock.advance(0)
            self.assertEqual(len(self.link.frames), sent)
        self.assertEqual([f["entry"]["seq"] for f in self.link.frames], list(range(1, 451)))
        self.assertFalse(any(f.get("sync") for f in self.link.frames))
        self.assertEqual(self.reads[0], (self.identity.node_id, 0, 150))
        self.assertFalse(self.streamer.pushing)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_runs_are_bounded(self):
        """
        At most MAX_PUSH_RUNS runs wait; an entry that would start another
        is refused (the relay announces it), one that extends its author's
        last run is still taken.
        """
        self.streamer.pauseProducing()
        for _ in range(MAX_PUSH_RUNS - 1):
            self.assertTrue(self.streamer.push(chain(Identity.generate(), 1)[0]))
        self.assertTrue(self.streamer.push(self.entries[0]))
        self.assertFalse(self.streamer.push(chain(Identity.generate(), 1)[0]))
        self.assertFalse(self.streamer.push(self.entries[2]))
        self.assertTrue(self.streamer.push(self.entries[1]))
        self.assertEqual(len(self.streamer.push_runs), MAX_PUSH_RUNS)
        self.assertEqual(self.streamer.push_runs[-1], (self.identity.node_id, 1, 2))

    def test_gap_starts_a_new_run(self):
        """
        An entry that does not follow its author's last run starts a new
        run: only queued seqs are sent.
        """
        self.streamer.pauseProducing()
        for entry in self.entries[0:3] + self.entries[5:7]:
            self.streamer.push(entry)
        self.link.drain()
        self.clock.advance(0)
        self.assertEqual([f["entry"]["seq"] for f in self.link.frames], [1, 2, 3, 6, 7])

    def test_stopped_takes_no_pushes(self):
        """
        A stopped producer (its link closed) drops its runs and takes none.
        """
        self.streamer.pauseProducing()
        self.streamer.push(self.entries[0])
        self.streamer.stopProducing()
        self.assertFalse(self.streamer.pushing)
        self.assertFalse(self.streamer.push(self.entries[1]))


class RelayBurstTests(SynchronousTestCase):
    """
    A burst posted in one reactor turn crosses a link whose transport
    fills, without announcements or grafts.
    """

    def test_burst_lands_without_graft_timeout(self):
        """
        300 posts in one turn on a link whose transport pauses its producer
        every 100 frames all reach bob as soon as the transport drains,
        with no time passing: none waits for an announcement and a graft.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice_side, _ = net.link(alice, bob)
        producer = alice.links.producer(alice_side)
        send = alice_side.send_frame
        written = []

        def send_frame(frame):
            send(frame)
            if frame["type"] == "entry":
                written.append(frame)
                if len(written) % 100 == 0:
                    producer.pauseProducing()

        self.patch(alice_side, "send_frame", send_frame)
        for i in range(300):
            alice.chat.post(f"burst {i}")
        for _ in range(3):
            net.settle()
            producer.resumeProducing()
        net.settle()
        self.assertEqual(bob.chat.status()["messages"], 300)
        self.assertEqual(bob.view.texts, [f"burst {i}" for i in range(300)])
        self.assertEqual(bob.relay.replicator.missing, {})

    def test_new_entry_waits_behind_queued_pushes(self):
        """
        Once the transport drained but before the producer sent its queue,
        a new post goes behind the queued ones, never ahead of them.
        """
        net = Network(self)
        alice, bob = net.node("alice"), net.node("bob")
        alice_side, _ = net.link(alice, bob)
        producer = alice.links.producer(alice_side)
        sent = []
        self.patch(alice_side, "send_frame", sent.append)
        producer.pauseProducing()
        alice.chat.post("first")
        net.clock.advance(0)
        producer.resumeProducing()
        alice.chat.post("second")
        net.clock.advance(0)
        self.assertEqual([f["entry"]["body"]["text"] for f in sent], ["first", "second"])
