"""
Tests for what people see while their node catches up: the line
console's progress line and per-room summary, live messages meanwhile,
the screen's status bar, and the chat API's progress news.
"""

from twisted.conch.insults.insults import ServerProtocol
from twisted.internet.testing import StringTransport
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.chat.catchup import CATCH_UP_AGE_S, PROGRESS_EVERY_S, PROGRESS_MIN_MISSING
from p2pchat.faces.console import ConsoleProtocol
from p2pchat.faces.screen import ChatScreen
from p2pchat.log.progress import CLAIM_GRACE_S
from p2pchat.mesh.peer import PeerProtocol
from tests.nodes import Network
from tests.unit.test_metrics import sample

CLAIMER = object()
NOW_S = 1_700_000_000.0


class CatchUpConsoleTests(SynchronousTestCase):
    def setUp(self):
        self.now = NOW_S
        self.net = Network(self, wall_clock=lambda: self.now)
        self.alice, self.bob = self.net.node("alice"), self.net.node("bob")
        self.bob.chat.rooms.join("#rust")
        self.alice.chat.rooms.join("#rust")
        for number in range(250):
            self.alice.chat.post(f"old {number}")
        for number in range(40):
            self.alice.chat.rooms.post("#rust", f"rusty {number}")
        self.net.settle()
        # What bob catches up on was written a while ago.
        self.now += CATCH_UP_AGE_S + 1
        self.transport = StringTransport()
        self.console = ConsoleProtocol(self.bob.chat)
        self.console.makeConnection(self.transport)
        self.transport.clear()

    def lines(self):
        value = self.transport.value().decode("utf-8")
        self.transport.clear()
        return [line for line in value.split("\r\n") if line and not line.endswith(" joined")]

    def connect(self):
        client, server, pump = iosim.connectedServerAndClient(
            lambda: PeerProtocol(self.alice.links, self.net.clock, False, 10.0),
            lambda: PeerProtocol(self.bob.links, self.net.clock, True, 10.0),
            greet=False, clock=self.net.clock,
        )
        self.net.pumps.append(pump)

    def test_progress_then_one_line_per_room(self):
        """
        While entries are known missing the console prints the progress
        line (at most every L{PROGRESS_EVERY_S}); the messages that catch
        the node up are not printed one by one but summed up per room once
        the catch-up has ended.
        """
        # alice's summary, as bob's replicator hands it over: 291 entries
        # (her join, 250 in #lobby, 40 in #rust).
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: 291})
        self.bob.tick()
        self.bob.tick()
        self.assertEqual(self.lines(), ["*** catching up: 0 of about 291 entries from 1 peer"])
        self.net.clock.advance(PROGRESS_EVERY_S)
        self.bob.tick()
        self.assertEqual(self.lines(), ["*** catching up: 0 of about 291 entries from 1 peer"])
        self.connect()
        self.net.settle()
        self.assertEqual(self.bob.store.count(), 291 + 1)
        self.net.clock.advance(2)
        self.assertEqual(sorted(self.lines()), [
            "*** 250 new messages in #lobby \N{EM DASH} /history to read",
            "*** 41 new messages in #rust \N{EM DASH} /history to read",
        ])
        self.bob.tick()
        self.assertEqual(self.lines(), [])

    def test_ordinary_lag_is_not_a_catch_up(self):
        """
        A few entries known missing (a busy network's summary names some
        still on their way) print no progress line.
        """
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: PROGRESS_MIN_MISSING - 1})
        self.bob.tick()
        self.assertEqual(self.lines(), [])
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: PROGRESS_MIN_MISSING})
        self.bob.tick()
        self.assertEqual(len(self.lines()), 1)

    def test_summary_waits_for_the_end(self):
        """
        A pause within a catch-up (here: a claim not yet fulfilled) does
        not end it: the summary waits until fewer than
        L{PROGRESS_MIN_MISSING} entries are known missing.
        """
        # 60 entries more than alice holds: never sent.
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: 291 + 60})
        self.bob.relay.progress.round_done(CLAIMER)
        self.connect()
        self.net.settle()
        self.transport.clear()
        self.net.clock.advance(CLAIM_GRACE_S - 1)
        self.assertEqual(self.lines(), [])
        self.net.clock.advance(2)
        self.assertEqual(len(self.lines()), 2)

    def test_fresh_messages_are_news(self):
        """
        A few messages that reach the node by a summary round (not pushed)
        but were written just now, such as lines that crossed a lazy link,
        are printed, not summed up.
        """
        self.now -= CATCH_UP_AGE_S + 1
        few = PROGRESS_MIN_MISSING - 10
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: few})
        self.assertFalse(self.bob.chat.catch_up.showing)
        for message in self.alice.chat.history(few):
            self.bob.chat.committed(message.entry, CLAIMER, False)
        lines = self.lines()
        self.assertEqual(len([line for line in lines if "<alice> " in line]), few)
        self.assertFalse([line for line in lines if "new messages" in line])

    def test_fresh_messages_of_a_big_catch_up_are_summed_up(self):
        """
        Messages written just now that arrive while a catch-up worth a
        progress line runs (a node joining right after a burst) are summed
        up per room like old ones, not printed by the hundred.
        """
        self.now -= CATCH_UP_AGE_S + 1
        self.connect()
        self.net.settle()
        self.net.clock.advance(2)
        lines = self.lines()
        self.assertFalse([line for line in lines if "<alice> old" in line])
        self.assertIn("*** 250 new messages in #lobby \N{EM DASH} /history to read", lines)

    def test_live_messages_print_at_once(self):
        """
        A live message arriving during a catch-up is printed at once.
        """
        self.connect()
        self.net.settle()
        self.bob.relay.progress.claimed(CLAIMER, {"f" * 64: 10})
        self.transport.clear()
        self.alice.chat.post("live one")
        self.net.settle()
        self.assertEqual(len(self.lines()), 1)

    def test_screen_status_bar(self):
        """
        The screen's status bar shows the progress line.
        """
        terminal = ServerProtocol(ChatScreen, self.bob.chat, self.net.clock, lambda: None)
        terminal.makeConnection(StringTransport())
        screen = terminal.terminalProtocol
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: 291})
        self.assertEqual(
            screen.status_text(),
            " #lobby | 0 peers alive | 0 links | catching up: 0 of about 291 entries"
            " from 1 peer",
        )
        screen.stop_updates()

    def test_status_and_lag(self):
        """
        C{/status}, the metrics levels and the Prometheus gauge carry the
        replication lag (entries known to exist but not held), and
        C{/status} whether the node is catching up.
        """
        self.bob.relay.progress.claimed(CLAIMER, {self.alice.node_id: 291})
        status = self.bob.chat.status()
        self.assertEqual((status["replication_lag"], status["catching_up"]), (291, True))
        self.assertEqual(self.bob.metrics_status()["replication_lag"], 291)
        self.bob.metrics.collect_from(self.bob.metrics_status)
        self.bob.metrics.refresh()
        self.assertEqual(sample(self.bob.metrics, "p2pchat_replication_lag_entries"), 291)
        self.connect()
        self.net.settle()
        status = self.bob.chat.status()
        self.assertEqual((status["replication_lag"], status["catching_up"]), (0, False))
        self.assertEqual(self.bob.chat.catch_up.snapshot()["received"], 291)
        self.bob.metrics.refresh()
        self.assertEqual(sample(self.bob.metrics, "p2pchat_replication_lag_entries"), 0)


class SmallCatchUpTests(SynchronousTestCase):
    def test_few_are_printed(self):
        """
        A catch-up of a few messages (not more than the gate's burst) is
        printed message by message, as before.
        """
        now = [NOW_S]
        net = Network(self, wall_clock=lambda: now[0])
        alice, bob = net.node("alice"), net.node("bob")
        for number in range(5):
            alice.chat.post(f"old {number}")
        net.settle()
        now[0] += CATCH_UP_AGE_S + 1
        transport = StringTransport()
        ConsoleProtocol(bob.chat).makeConnection(transport)
        transport.clear()
        net.link(alice, bob)
        net.clock.advance(2)
        lines = [line for line in transport.value().decode().split("\r\n")
                 if "<alice>" in line]
        self.assertEqual([line.split("> ", 1)[1] for line in lines],
                         [f"old {number}" for number in range(5)])


class CatchUpNewsLevelTests(SynchronousTestCase):
    def test_per_message_questions_read_only_the_level(self):
        """
        C{big} and C{showing} are asked for every message a catch-up
        commits: they read the cheap level, never the snapshot (which
        computes the rate and the sources; asked per message, it took
        three quarters of a catching-up node's reactor time).
        """
        from twisted.internet.task import Clock

        from p2pchat.chat.catchup import CatchUpNews

        def snapshot():
            raise AssertionError("snapshot asked per message")

        level = [(PROGRESS_MIN_MISSING, True)]
        news = CatchUpNews(Clock(), snapshot, list, lambda: level[0])
        self.assertEqual((news.showing, news.big), (True, True))
        level[0] = (1, True)
        self.assertEqual((news.showing, news.big), (False, True))
        level[0] = (0, False)
        self.assertEqual((news.showing, news.big), (False, False))
