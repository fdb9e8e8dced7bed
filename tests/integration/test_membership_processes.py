"""
Gossip membership with real C{twistd -n p2pchat} processes, checked as a
user sees it: in C{/peers}, in the console's C{***} notices and in
C{/status}.

The processes come from L{p2pchat.bench.processes}: a thread reads each
node's output as it comes, so a dozen nodes logging gossip never block on
a full pipe, and C{ConsoleClient.reply} collects a whole multi-line reply.
Every wait blocks on a node's output or a console socket until the
expected event or a deadline; nothing sleeps.  The times measured are
printed (run trial with C{-e} or read C{_trial_temp/test.log}) and are the
numbers in C{docs/performance.md}.
"""

import os
import re
import signal
import sys
import time
from dataclasses import dataclass
from typing import Callable, List

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.bench.processes import (  # DEADLINE_S: generous, never a speed bound
    DEADLINE_S,
    ConsoleClient,
    NodeProcess,
    Timeout,
    free_ports,
)
from p2pchat.mesh.membership import MembershipConfig

CONSOLE = "tcp:0:interface=127.0.0.1"
STARTED_ID = re.compile(rb"p2pchat node \S+ \(([0-9a-f]{8})\) started")
PEER_LINE = re.compile(
    r"^(?P<name>\S+) (?P<short>[0-9a-f]{8}) (?P<address>\S+) "
    r"(?P<state>alive|suspect|dead|left) (?P<linked>connected|not connected) "
    r"heard (?P<heard>\d+)s ago$"
)
# A message that arrived while waiting for a reply.
CHAT_LINE = re.compile(r"^\[\d\d:\d\d:\d\d\] [<*]")
# What a node logs when its view of the network changes (so /peers or
# /status may answer differently): a member learned or changed state, a
# link up or down.
VIEW_CHANGED = re.compile(
    rb"member .* (joined|is back|seems down|is down|left|is known, \w+)$|link (up|down) with",
    re.MULTILINE,
)
LINK_SLACK = MembershipConfig().link_slack
# How long the bounded-links test watches links after they settled.
WATCH_S = 5.0
LINK_EVENT = re.compile(rb"link (up|down) with")


@dataclass(frozen=True)
class PeerRow:
    """
    One line of C{/peers}.
    """

    name: str
    short: str
    address: str
    state: str
    linked: bool
    heard_s: int


def parse_peers(text: str) -> List[PeerRow]:
    """
    @return: the rows of a C{/peers} reply.
    @raise AssertionError: if a line is not in the documented format.
    """
    rows = []
    for line in text.splitlines():
        # "error: " is the start of the reply to the end marker that
        # ConsoleClient.reply sends after the command.
        if line in ("", "no known peers", "error: ") or line.startswith("***"):
            continue
        if CHAT_LINE.match(line):
            continue
        match = PEER_LINE.match(line)
        if match is None:
            raise AssertionError(f"/peers line not in the documented format: {line!r}")
        rows.append(PeerRow(
            match["name"], match["short"], match["address"], match["state"],
            match["linked"] == "connected", int(match["heard"]),
        ))
    return rows


def most_links(output: bytes, since: int) -> int:
    """
    @return: the most links a node held at once from offset C{since} of
        its log on, counting its C{link up} and C{link down} lines from
        the start.
    """
    count = most = 0
    for match in LINK_EVENT.finditer(output):
        count += 1 if match.group(1) == b"up" else -1
        if match.start() >= since:
            most = max(most, count)
    return max(most, count)


def report(text: str) -> None:
    """
    Print a measured number where a developer running the tests sees it.
    """
    sys.__stdout__.write(f"\n  measured: {text}\n")
    sys.__stdout__.flush()


class Member:
    """
    A running node, its short id, and a console on it.
    """

    def __init__(self, process: NodeProcess, console: ConsoleClient):
        self.process = process
        self.console = console
        self.name = process.name
        self.short = STARTED_ID.search(process.output).group(1).decode()

    def peers(self) -> List[PeerRow]:
        """
        @return: this node's C{/peers} now.
        """
        return parse_peers(self.console.reply("/peers"))

    def row(self, other: "Member") -> List[PeerRow]:
        """
        @return: the C{/peers} rows of this node about C{other}.
        """
        return [row for row in self.peers() if row.short == other.short]

    def links(self) -> int:
        """
        @return: the open links C{/status} shows.
        """
        return int(self.console.status()["links"])

    def wait_peers(
        self, predicate: Callable[[List[PeerRow]], bool], deadline: float, what: str
    ) -> List[PeerRow]:
        """
        Ask C{/peers} until C{predicate} holds of its rows, asking again
        each time the node logs a change of its view, until C{deadline}
        (a C{time.monotonic()} value).

        @return: the rows that satisfied C{predicate}.
        """
        while True:
            offset = len(self.process.output)
            rows = self.peers()
            if predicate(rows):
                return rows
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"{self.name}: /peers never showed {what}; last:\n"
                              + "\n".join(map(str, rows)))
            try:
                self.process.wait_for_log(VIEW_CHANGED, after=offset, deadline_s=remaining)
            except Timeout:
                pass

    def wait_notice(self, other: "Member", state: str, start: int, deadline: float) -> float:
        """
        Wait for the console notice that C{other} is C{state}, received
        after offset C{start}.

        @return: when it arrived (C{time.monotonic()}).
        """
        words = {"dead": "is down", "left": "left", "alive": "is back"}[state]
        pattern = re.compile(
            rf"\*\*\* {re.escape(other.name)} \({other.short}\) {words}\r\n".encode()
        )
        self.console.wait_for(pattern, start, deadline_s=max(0.0, deadline - time.monotonic()))
        return time.monotonic()


def knows_alive(others: List[Member]) -> Callable[[List[PeerRow]], bool]:
    """
    @return: a predicate: every one of C{others} is listed alive.
    """
    wanted = {other.short for other in others}

    def predicate(rows):
        return wanted <= {row.short for row in rows if row.state == "alive"}

    return predicate


class MembershipProcessTests(SynchronousTestCase):
    """
    Membership as users of real nodes see it.
    """

    def spawn(self, name: str, *args: str, data_dir: str = None) -> NodeProcess:
        """
        Start (without waiting for it) a node listening on a free loopback
        port (unless C{args} say C{--listen} or C{--port}) with a loopback
        console, in its own data directory; it is killed when the test
        ends.
        """
        data_dir = data_dir or os.path.abspath(self.mktemp())
        listen = [] if "--listen" in args or "--port" in args else ["--port", "0"]
        process = NodeProcess(name, data_dir, *listen, "--console", CONSOLE, *args)
        process.spawn()
        self.addCleanup(process.stop, signal.SIGKILL)
        return process

    def ready(self, process: NodeProcess) -> Member:
        """
        Wait until C{process} started and open a console on it.
        """
        process.wait_started()
        console = process.console()
        self.addCleanup(console.close)
        return Member(process, console)

    def start(self, name: str, *args: str, data_dir: str = None) -> Member:
        """
        Start a node and wait until it is ready.
        """
        return self.ready(self.spawn(name, *args, data_dir=data_dir))

    def network(self, count: int, *args: str, prefix: str = "node") -> List[Member]:
        """
        Start C{count} nodes, each given only the first as C{--peer}, and
        wait until each lists all others alive.
        """
        first = self.start(f"{prefix}-0", *args)
        processes = [
            self.spawn(f"{prefix}-{index}", "--peer", first.process.peer_address, *args)
            for index in range(1, count)
        ]
        members = [first] + [self.ready(process) for process in processes]
        self.wait_all_know(members, time.monotonic() + 15)
        return members

    def wait_all_know(self, members: List[Member], deadline: float) -> None:
        """
        Wait until each of C{members} lists all the others alive (checking
        each once more at the end: none may have dropped out meanwhile).
        """
        for _ in range(2):
            for member in members:
                others = [other for other in members if other is not member]
                member.wait_peers(knows_alive(others), deadline, "every other node alive")

    def test_chain_join(self):
        """
        Twelve nodes started at once in a chain, each given only the
        previous one as C{--peer}, all list each other alive in C{/peers} within 30 s
        at default settings, and a broadcast from the last reaches the
        first.
        """
        ports = free_ports(12)
        began = time.monotonic()
        processes = [
            self.spawn(f"chain-{number + 1:02}", "--port", str(port))
            if number == 0 else
            self.spawn(f"chain-{number + 1:02}", "--port", str(port),
                       "--peer", f"127.0.0.1:{ports[number - 1]}")
            for number, port in enumerate(ports)
        ]
        members = [self.ready(process) for process in processes]
        all_started = time.monotonic()
        self.wait_all_know(members, all_started + 30)
        known = time.monotonic()
        members[-1].console.send("from the end of the chain")
        members[0].console.wait_for(rb"<chain-12> from the end of the chain\r\n")
        report(
            f"chain of 12 started at once: all list 11 alive {known - all_started:.2f} s "
            f"after all were ready ({known - began:.2f} s after spawning); broadcast "
            f"last->first {time.monotonic() - known:.2f} s"
        )
        for member in members:
            rows = member.peers()
            self.assertEqual(len(rows), 11, (member.name, rows))
            self.assertEqual({row.state for row in rows}, {"alive"}, (member.name, rows))
            self.assertEqual(len({row.short for row in rows}), 11)

    def test_kill_9_is_dead_everywhere_within_10_s(self):
        """
        Of six nodes at default settings, one is killed with SIGKILL: every
        other node's console announces it dead, and C{/peers} shows it
        C{dead}, within 10 s, whether or not it had a link to it, while
        the survivors still show each other alive (no false positive).
        """
        members = self.network(6)
        victim, survivors = members[-1], members[:-1]
        linked = [member.row(victim)[0].linked for member in survivors]
        starts = [len(member.console.received) for member in survivors]
        victim.process.process.kill()
        killed = time.monotonic()
        deadline = killed + 10
        times = [
            member.wait_notice(victim, "dead", start, deadline) - killed
            for member, start in zip(survivors, starts)
        ]
        report(
            "kill -9 shown dead after "
            + ", ".join(f"{t:.2f}{'' if link else ' (not linked)'}"
                        for t, link in zip(times, linked))
            + " s"
        )
        self.assertEqual(victim.process.process.wait(), -signal.SIGKILL)
        for member in survivors:
            self.assertEqual([row.state for row in member.row(victim)], ["dead"])
            others = [other for other in survivors if other is not member]
            self.assertTrue(knows_alive(others)(member.peers()), member.name)

    def test_leave_then_restart_with_the_same_id(self):
        """
        A node stopped with SIGTERM is shown C{left} by every other node
        and its process exits 0; started again with the same data
        directory (the same id) it is shown alive again everywhere.  (How
        fast is reported, not asserted: the deadlines are generous.)
        """
        members = self.network(4)
        leaver, stayers = members[-1], members[:-1]
        starts = [len(member.console.received) for member in stayers]
        leaver.process.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        times = [
            member.wait_notice(leaver, "left", start, signalled + DEADLINE_S) - signalled
            for member, start in zip(stayers, starts)
        ]
        status = leaver.process.process.wait(max(0.0, signalled + DEADLINE_S - time.monotonic()))
        exited = time.monotonic() - signalled
        self.assertEqual(status, 0)
        for member in stayers:
            self.assertEqual([row.state for row in member.row(leaver)], ["left"])
        starts = [len(member.console.received) for member in stayers]
        restarted = time.monotonic()
        back = self.start(
            leaver.name, "--peer", stayers[0].process.peer_address,
            data_dir=leaver.process.data_dir,
        )
        ready = time.monotonic()
        self.assertEqual(back.short, leaver.short)
        alive = [
            member.wait_notice(back, "alive", start, ready + DEADLINE_S) - ready
            for member, start in zip(stayers, starts)
        ]
        report(
            "SIGTERM shown left after " + ", ".join(f"{t:.2f}" for t in times)
            + f" s; exit 0 after {exited:.2f} s; restarted (ready {ready - restarted:.2f} s) "
            "and shown alive after " + ", ".join(f"{t:.2f}" for t in alive)
            + " s from ready"
        )
        for member in stayers:
            self.assertEqual([row.state for row in member.row(back)], ["alive"])

    def test_outbound_only_node(self):
        """
        A node started with C{--listen none} sends and receives broadcasts
        through its outbound link, and the other nodes list it alive,
        reachable C{via-relay} (it has no address), including one that has
        no link to it.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.process.peer_address)
        hidden_away = self.start(
            "natted", "--listen", "none", "--max-links", "1", "--peer", bob.process.peer_address
        )
        self.assertEqual(hidden_away.process.peer_address, "none")
        deadline = time.monotonic() + 10
        for member in (alice, bob):
            rows = member.wait_peers(knows_alive([hidden_away]), deadline, "natted alive")
            [row] = [row for row in rows if row.short == hidden_away.short]
            self.assertEqual((row.address, row.state), ("via-relay", "alive"))
        self.assertFalse(alice.row(hidden_away)[0].linked)
        self.assertTrue(bob.row(hidden_away)[0].linked)
        hidden_away.console.send("hello from behind the NAT")
        alice.console.wait_for(rb"<natted> hello from behind the NAT\r\n")
        alice.console.send("hello to the natted node")
        hidden_away.console.wait_for(rb"<alice> hello to the natted node\r\n")
        hidden_away.wait_peers(knows_alive([alice, bob]), deadline, "alice and bob alive")

    def check_links_bounded(self, members: List[Member], max_links: int) -> None:
        """
        Wait until no node of C{members} holds more than C{max_links +
        link_slack} links, watch the first node's new links for
        C{WATCH_S} seconds, then check that no node held more meanwhile,
        that no node was suspected, and that a broadcast reaches all.
        """
        bound = max_links + LINK_SLACK
        settle_by = time.monotonic() + 10
        for member in members:
            while member.links() > bound:
                offset = len(member.process.output)
                remaining = settle_by - time.monotonic()
                self.assertGreater(remaining, 0, f"{member.name} never shed its extra links")
                member.process.wait_for_log(rb"link down with", offset, remaining)
        settled = {member.name: len(member.process.output) for member in members}
        first = members[0].process
        watch_until = time.monotonic() + WATCH_S
        new_links = 0
        offset = settled[first.name]
        while True:
            remaining = watch_until - time.monotonic()
            if remaining <= 0:
                break
            try:
                offset = first.wait_for_log(rb"link up with", offset, remaining).end()
            except Timeout:
                break
            new_links += 1
        last = members[-1]
        last.console.send("relayed to everyone")
        for member in members:
            member.console.wait_for(f"<{last.name}> relayed to everyone\r\n".encode())
        most = {member.name: most_links(member.process.output, settled[member.name])
                for member in members}
        report(f"--max-links {max_links}, {len(members)} nodes: most links per node over "
               f"{WATCH_S:g} s after settling {most}; {new_links} new links on "
               f"{first.name} meanwhile")
        for member in members:
            self.assertLessEqual(most[member.name], bound, most)
            self.assertGreaterEqual(member.links(), 1)
            self.assertNotIn(b"suspecting", member.process.output, member.name)

    def test_links_stay_bounded(self):
        """
        Eight nodes with C{--max-links 3}, started at once in a chain (each
        given the previous one as C{--peer}), each then linking to random
        members it learned: once settled no node holds more than 3 +
        link_slack links at any time over the next C{WATCH_S} seconds, no
        node is suspected, and a broadcast reaches every node by relay.
        """
        ports = free_ports(8)
        processes = [
            self.spawn(f"bound-{number}", "--max-links", "3", "--port", str(port),
                       *(["--peer", f"127.0.0.1:{ports[number - 1]}"] if number else []))
            for number, port in enumerate(ports)
        ]
        members = [self.ready(process) for process in processes]
        self.wait_all_know(members, time.monotonic() + 15)
        self.check_links_bounded(members, 3)

    def test_links_stay_bounded_with_one_seed(self):
        """
        Eight nodes with C{--max-links 3}, all given the same first node as
        C{--peer}: the first node sheds its extra inbound links and they
        stay shed (no more than 3 + link_slack links at any time over
        C{WATCH_S} seconds), nobody is suspected, and a broadcast reaches
        every node.
        """
        members = self.network(8, "--max-links", "3")
        self.check_links_bounded(members, 3)


    def test_same_name_told_apart_by_id(self):
        """
        Two nodes both named twin show as two C{/peers} rows with different
        short ids; C{/msg twin} answers with an error naming both short ids
        and sends nothing; C{/msg SHORTID} reaches that twin only.
        """
        observer = self.start("observer")
        first = self.start("twin", "--peer", observer.process.peer_address)
        second = self.start("twin", "--peer", observer.process.peer_address)
        self.assertNotEqual(first.short, second.short)
        rows = observer.wait_peers(
            knows_alive([first, second]), time.monotonic() + 10, "both twins"
        )
        self.assertEqual(sorted(row.name for row in rows), ["twin", "twin"])
        error = observer.console.command("/msg twin which one?", rb"error: [^\r]*\r\n")
        self.assertIn(first.short, error)
        self.assertIn(second.short, error)
        self.assertIn("several peers match twin", error)
        self.assertEqual(observer.console.status()["messages"], "0")
        observer.console.send(f"/msg {second.short} for the second twin")
        second.console.wait_for(rb"\*observer\* for the second twin\r\n")
        observer.console.send("/msg " + first.short + " for the first twin")
        first.console.wait_for(rb"\*observer\* for the first twin\r\n")
        self.assertNotIn(b"for the second twin", first.console.received)

    def test_hidden_node_and_hide_show(self):
        """
        A C{--hidden} node is listed only by the node it links to (alive,
        connected); a node that is not linked to it does not list it, even
        after learning through gossip of a node that joined through the
        hidden one; the hidden node still posts and reads.  C{/hide} on a
        visible node makes others list it C{left} while it still posts;
        C{/show} makes it alive again everywhere.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.process.peer_address)
        ghost = self.start(
            "ghost", "--hidden", "--max-links", "1", "--peer", alice.process.peer_address
        )
        late = self.start(
            "late", "--max-links", "1", "--peer", ghost.process.peer_address
        )
        deadline = time.monotonic() + 10
        alice.wait_peers(knows_alive([bob, ghost, late]), deadline, "bob, ghost, late")
        bob_rows = bob.wait_peers(knows_alive([alice, late]), deadline, "alice and late")
        [ghost_at_alice] = alice.row(ghost)
        self.assertEqual((ghost_at_alice.state, ghost_at_alice.linked), ("alive", True))
        self.assertEqual([row for row in bob_rows if row.short == ghost.short], [])
        self.assertEqual(bob.row(ghost), [])
        ghost.console.send("posted by the hidden node")
        bob.console.wait_for(rb"<ghost> posted by the hidden node\r\n")
        bob.console.send("read by the hidden node")
        ghost.console.wait_for(rb"<bob> read by the hidden node\r\n")
        ghost.wait_peers(knows_alive([alice, bob, late]), deadline, "everyone alive")

        starts = {member.name: len(member.console.received) for member in (alice, bob, ghost)}
        late.console.command("/hide", rb"hidden: [^\r]*\r\n")
        hidden_at = time.monotonic()
        for member in (alice, bob, ghost):
            member.wait_notice(late, "left", starts[member.name], hidden_at + DEADLINE_S)
            self.assertEqual([row.state for row in member.row(late)], ["left"])
        late.console.send("still posting while hidden")
        bob.console.wait_for(rb"<late> still posting while hidden\r\n")
        starts = {member.name: len(member.console.received) for member in (alice, bob, ghost)}
        late.console.command("/show", rb"shown: [^\r]*\r\n")
        shown_at = time.monotonic()
        for member in (alice, bob, ghost):
            member.wait_notice(late, "alive", starts[member.name], shown_at + DEADLINE_S)
            self.assertEqual([row.state for row in member.row(late)], ["alive"])
        report(f"/hide shown left and /show alive again everywhere in "
               f"{time.monotonic() - hidden_at:.2f} s (both)")

