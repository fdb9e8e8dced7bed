"""
Live delivery in a simulated network: one L{Replicator} per node, links
with latency, and each node a single worker that takes a while to handle
each entry (parse, verify, commit) and much less for a small frame, on a
machine of a few cores that all nodes share (32 processes on 2 cores, as
in the bench), so busy nodes queue, as real ones do on a loaded machine.  Everything
runs on one L{Clock}; entries are ids, nothing is stored.

Used by C{tests/unit/test_live_tree.py} to check that the eager links
stay a tree every node is on while authors take turns posting (the
fan-out scenario of C{python -m p2pchat.bench}), and to try changes to
the rules of L{p2pchat.log.replication} in seconds rather than in noisy
32-process runs.
"""

from random import Random
from typing import Dict, List, Tuple

from twisted.internet.task import Clock
from zope.interface import implementer

from p2pchat.log.replication import ReplicationConfig, Replicator
from p2pchat.log.replication_state import IReplicationOutput


class _Link:
    """One end of a simulated link: the node at the other end."""

    def __init__(self, owner: "_Node", peer: "_Node"):
        self.owner = owner
        self.peer = peer
        self.back: "_Link" = None  # type: ignore[assignment]


@implementer(IReplicationOutput)
class _Node:
    """One simulated node: its replicator, what it holds, its worker."""

    def __init__(self, net: "LiveTree", index: int):
        self.net = net
        self.index = index
        self.held: Dict[str, float] = {}
        # Copies arrived and waiting for the worker (being verified).
        self.queued: Dict[str, int] = {}
        self.busy_until = 0.0
        self.received = 0
        self.replicator = Replicator(
            net.clock, self, ReplicationConfig(anti_entropy_interval_s=1e9),
            Random(net.rng.random()))

    # The worker: everything a node handles waits for the ones before.

    def handle(self, cost_s: float, action) -> None:
        now = self.net.clock.seconds()
        cores = self.net.cores
        core = min(range(len(cores)), key=cores.__getitem__)
        self.busy_until = max(now, self.busy_until, cores[core]) + cost_s
        cores[core] = self.busy_until
        self.net.clock.callLater(self.busy_until - now, action)

    def deliver(self, link: _Link, frame: dict) -> None:
        """C{frame} arrives from the other end of C{link}."""
        def run():
            if link in self.net.links_of[self]:
                self.replicator.rx_frame(link, frame)
        self.handle(self.net.frame_cost_s, run)

    def entry_arrives(self, link: _Link, entry_id: str, live: bool) -> None:
        self.queued[entry_id] = self.queued.get(entry_id, 0) + 1

        def run():
            self.received += 1
            self.queued[entry_id] -= 1
            if not self.queued[entry_id]:
                del self.queued[entry_id]
            if entry_id in self.held:
                if live:
                    self.replicator.entry_duplicate(link)
                return
            self.commit(entry_id, link, live)
        self.handle(self.net.entry_cost_s, run)

    def commit(self, entry_id: str, source, live: bool = True) -> None:
        self.held[entry_id] = self.net.clock.seconds()
        for link in self.replicator.entry_added(entry_id, source, live=live):
            self.net.carry(link, lambda peer, back: peer.entry_arrives(back, entry_id, True))

    # IReplicationOutput

    def send(self, link, frame):
        self.net.carry(link, lambda peer, back: peer.deliver(back, frame))

    def when_ready(self, link, action):
        action()

    def answer(self, link, after, upto, vv, done):
        done()

    def graft(self, link, entry_ids):
        for entry_id in entry_ids:
            if entry_id in self.held:
                self.net.carry(
                    link, lambda peer, back, e=entry_id: peer.entry_arrives(back, e, False))
        return 0

    def solicit(self, link):
        pass

    def settle(self, link):
        pass

    def holds(self, entry_id):
        return entry_id in self.held or entry_id in self.queued

    def feeds_page(self, after, limit):
        return []

    def pending(self):
        return 0


class LiveTree:
    """
    C{nodes} nodes, each linked to at least C{degree} others at random
    (seeded), posting in turn.

    @ivar posted: entry id -> (author's index, clock time of the post).
    """

    def __init__(self, nodes: int = 32, degree: int = 5, seed: int = 1,
                 latency_s: Tuple[float, float] = (0.0005, 0.002),
                 entry_cost_s: float = 0.002, frame_cost_s: float = 0.0001,
                 cores: int = 2):
        self.clock = Clock()
        self.cores = [0.0] * cores
        self.rng = Random(seed)
        self.latency_s = latency_s
        self.entry_cost_s = entry_cost_s
        self.frame_cost_s = frame_cost_s
        self.nodes = [_Node(self, i) for i in range(nodes)]
        self.links_of: Dict[_Node, List[_Link]] = {node: [] for node in self.nodes}
        self.posted: Dict[str, Tuple[int, float]] = {}
        for node in self.nodes[1:]:
            self.link(node, self.nodes[self.rng.randrange(node.index)])
        for node in self.nodes:
            while len(self.links_of[node]) < degree:
                other = self.rng.choice(self.nodes)
                if other is not node and all(end.peer is not other for end in self.links_of[node]):
                    self.link(node, other)
        for node in self.nodes:
            self.clock.callLater(self.rng.uniform(0, 0.2), self._tick, node)
        self.run(1.0)

    def link(self, a: _Node, b: _Node) -> None:
        ab, ba = _Link(a, b), _Link(b, a)
        ab.back, ba.back = ba, ab
        self.links_of[a].append(ab)
        self.links_of[b].append(ba)
        a.replicator.link_up(ab)
        b.replicator.link_up(ba)

    def carry(self, link: _Link, arrive) -> None:
        """Run C{arrive(peer, peer's end)} after a link latency."""
        delay = self.rng.uniform(*self.latency_s)
        self.clock.callLater(delay, arrive, link.peer, link.back)

    def _tick(self, node: _Node) -> None:
        node.replicator.tick()
        self.clock.callLater(0.2, self._tick, node)

    def run(self, seconds: float) -> None:
        """Run every event due within C{seconds}, in time order."""
        end = self.clock.seconds() + seconds
        while True:
            due = [call.getTime() for call in self.clock.getDelayedCalls()]
            upcoming = min(due) if due else end
            if upcoming > end:
                self.clock.advance(end - self.clock.seconds())
                return
            self.clock.advance(max(0.0, upcoming - self.clock.seconds()))

    def post(self, number: int) -> str:
        """Node C{number % nodes} posts an entry; return its id."""
        author = self.nodes[number % len(self.nodes)]
        entry_id = f"{number:064x}"
        self.posted[entry_id] = (author.index, self.clock.seconds())
        author.commit(entry_id, None)
        return entry_id

    def posts(self, count: int, interval_s: float, after_s: float = 5.0) -> None:
        """Post C{count} entries C{interval_s} apart, then run C{after_s}."""
        for number in range(count):
            self.post(number)
            self.run(interval_s)
        self.run(after_s)

    def latencies_s(self) -> List[float]:
        """Every (entry, other node) delivery's delay, sorted."""
        return sorted(
            node.held[entry_id] - at
            for entry_id, (author, at) in self.posted.items()
            for node in self.nodes
            if node.index != author and entry_id in node.held
        )

    def redundancy(self) -> float:
        """Entry copies received per node per entry."""
        deliveries = len(self.posted) * (len(self.nodes) - 1)
        return sum(node.received for node in self.nodes) / deliveries
