"""
A network of L{Membership} objects in one process: in-memory links with
latency and optional frame loss, one shared L{Clock}, and an event queue
that runs each node's tick and each frame's delivery in time order.

The queue is this module's own (a heap), not C{Clock.callLater}; the
L{Clock} only carries the time the objects under test read.  Frames
travel as dicts (no JSON) unless C{wire_check} is set; their encoded size
is still counted (L{Simulation.bytes_sent}).  Signature checks and row
sizes are shared by the nodes (L{p2pchat.testing.shared}).
"""

import heapq
from random import Random
from typing import Callable, Dict, List, Optional, Tuple

from nacl.signing import SigningKey
from twisted.internet.task import Clock
from zope.interface import implementer

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.mesh.membership import (
    ALIVE,
    IMembershipOutput,
    Member,
    Membership,
    MembershipConfig,
)
from p2pchat.testing.shared import SharedWork


@implementer(IMembershipOutput)
class SimOutput:
    """Carries one node's outputs into the L{Simulation}."""

    def __init__(self, sim: "Simulation", node: "SimNode"):
        self._sim = sim
        self._node = node

    def send(self, peer_id: str, frame: dict) -> None:
        self._sim.send(self._node, peer_id, frame)

    def ready(self, peer_id: str) -> bool:
        return True

    def connect(self, address: str) -> None:
        self._sim.connects.append((self._sim.clock.seconds(), self._node.node_id, address))
        self._sim.connect(self._node, address)

    def disconnect(self, peer_id: str, reason: str) -> None:
        sim = self._sim
        sim.disconnects.append((sim.clock.seconds(), self._node.node_id, peer_id))
        # The close travels like a frame: what was sent before it arrives
        # first (TCP delivers the bytes, then the FIN).
        sim.close_after_frames(self._node.node_id, peer_id)

    def member_changed(self, member: Member, old_state: Optional[str]) -> None:
        sim = self._sim
        if old_state is None and member.state == ALIVE and not sim.keep_learned:
            sim.learned += 1
        else:
            sim.changes.append((
                sim.clock.seconds(), self._node.node_id, member.node_id, old_state, member.state
            ))


class SimNode:
    """
    One simulated node process.

    @ivar running: whether it ticks and receives (C{False} once killed).
    """

    def __init__(self, identity: Identity, name: str, address: Optional[str]):
        self.identity = identity
        self.node_id = identity.node_id
        self.name = name
        self.address = address
        self.running = True
        self.membership: Optional[Membership] = None
        self.generation = 0
        #: While the clock is before this, the node is paused (see
        #: L{Simulation.pause}).
        self.paused_until = 0.0

    def __repr__(self) -> str:
        return f"<SimNode {self.name} {self.node_id[:8]}>"


class Simulation:
    """
    Nodes, links and a clock.

    @ivar changes: every C{member_changed} output, as C{(time, observer,
        member, old_state, new_state)} (but see C{keep_learned}).
    @ivar frame_errors: every L{wire.FrameError} a receiver raised, as
        C{(receiver, sender, reason)}.
    @ivar frames_sent: frames handed to the network.
    @ivar rows_sent: rows in those frames.
    @ivar largest_line: the longest encoded frame, in bytes (only counted
        with C{wire_check}).
    @ivar bytes_sent: the encoded size of those frames, newlines included.
    """

    def __init__(
        self,
        seed: int = 0,
        config: MembershipConfig = MembershipConfig(),  # noqa: B008 (frozen)
        drop_rate: float = 0.0,
        latency_s: Tuple[float, float] = (0.002, 0.03),
        wire_check: bool = False,
        keep_learned: bool = True,
    ):
        """
        @param drop_rate: the chance that any one frame is lost.
        @param latency_s: each link's one-way latency is drawn from this
            range when it opens; frames on one link stay in order.
        @param wire_check: encode every frame as a line and parse it back,
            checking its length, as the real links would.
        @param keep_learned: whether L{changes} lists members learned
            alive (else only counted, in C{learned}: N^2 of them).
        """
        self.clock = Clock()
        self.rng = Random(seed)
        self.config = config
        self.drop_rate = drop_rate
        self.latency_s = latency_s
        self.wire_check = wire_check
        self.nodes: List[SimNode] = []
        self.by_id: Dict[str, SimNode] = {}
        self._links: Dict[Tuple[str, str], int] = {}
        self._latency: Dict[frozenset, float] = {}
        self._events: list = []
        self._sequence = 0
        self.changes: list = []
        self.keep_learned = keep_learned
        self.learned = 0
        self.connects: list = []
        self.disconnects: list = []
        self.frame_errors: list = []
        self.frames_sent = 0
        self.rows_sent = 0
        self.frames_dropped = 0
        self.largest_line = 0
        self.bytes_sent = 0
        self._shared = SharedWork()

    # Building

    def add_node(
        self,
        name: Optional[str] = None,
        listening: bool = True,
        incarnation: int = 0,
        hidden: bool = False,
    ) -> SimNode:
        """
        Start a new node with a fresh identity.

        @param listening: whether it has an address (C{False}: outbound
            only).
        """
        index = len(self.nodes)
        seed = self.rng.getrandbits(256).to_bytes(32, "big")
        identity = Identity(SigningKey(seed))
        node = SimNode(
            identity, name or f"n{index}", f"10.0.{index // 250}.{index % 250}:9000"
            if listening else None,
        )
        self.nodes.append(node)
        self.by_id[node.node_id] = node
        self._start(node, incarnation, hidden)
        return node

    def _start(self, node: SimNode, incarnation: int, hidden: bool = False) -> None:
        node.running = True
        node.generation += 1
        config = self.config
        if hidden:
            config = MembershipConfig(**{**config.__dict__, "hidden": True})
        node.membership = Membership(
            node.node_id, node.name, node.address, self.clock, SimOutput(self, node),
            config, Random(self.rng.getrandbits(64)), incarnation=incarnation,
            signer=node.identity.sign, verify=self._shared.verify,
        )
        phase = self.rng.uniform(0, self.config.gossip_interval_s)
        self._schedule(phase, self._tick, node, node.generation)

    def restart(self, node: SimNode, incarnation: int = 0) -> None:
        """
        Start C{node} again (same id and address) after L{kill}.
        """
        self._start(node, incarnation)

    def link(self, opener: SimNode, listener: SimNode) -> None:
        """
        Open a link from C{opener} to C{listener} now (as C{--peer} does).
        """
        self._open(opener, listener)

    # Network

    def _schedule(self, delay: float, call: Callable, *args) -> None:
        self._sequence += 1
        heapq.heappush(self._events, (self.clock.seconds() + delay, self._sequence, call, args))

    def _tick(self, node: SimNode, generation: int) -> None:
        if not node.running or node.generation != generation:
            return
        if node.paused_until > self.clock.seconds():
            self._schedule(
                node.paused_until - self.clock.seconds(), self._tick, node, generation
            )
            return
        node.membership.tick()
        self._schedule(self.config.gossip_interval_s, self._tick, node, generation)

    def linked(self, a: str, b: str) -> bool:
        """@return: whether a link joins C{a} and C{b}."""
        return self._links.get((a, b), 0) > 0

    def _latency_between(self, a: str, b: str) -> float:
        key = frozenset((a, b))
        if key not in self._latency:
            self._latency[key] = self.rng.uniform(*self.latency_s)
        return self._latency[key]

    def send(self, sender: SimNode, peer_id: str, frame: dict) -> None:
        if not self.linked(sender.node_id, peer_id):
            raise AssertionError(f"{sender} sent to {peer_id[:8]} without a link")
        self.frames_sent += 1
        self.rows_sent += len(frame.get("rows", ()))
        if self.wire_check:
            line = wire.encode_frame(frame)
            self.largest_line = max(self.largest_line, len(line))
            self.bytes_sent += len(line) + 1
            if len(line) > wire.MAX_LINE_BYTES:
                raise AssertionError(f"frame of {len(line)} bytes")
            frame = wire.parse_frame(line)
        else:
            self.bytes_sent += self._shared.size(frame)
        if self.drop_rate and self.rng.random() < self.drop_rate:
            self.frames_dropped += 1
            return
        receiver = self.by_id[peer_id]
        self._schedule(
            self._latency_between(sender.node_id, peer_id),
            self._deliver, sender, receiver, receiver.generation, frame,
        )

    def _deliver(self, sender: SimNode, receiver: SimNode, generation: int, frame) -> None:
        if not receiver.running or receiver.generation != generation:
            return
        if not self.linked(sender.node_id, receiver.node_id):
            return
        if receiver.paused_until > self.clock.seconds():
            # A paused process reads its links when it resumes (TCP keeps
            # the bytes), in order.
            self._schedule(
                receiver.paused_until - self.clock.seconds(),
                self._deliver, sender, receiver, generation, frame,
            )
            return
        try:
            receiver.membership.heard_from(sender.node_id)
            receiver.membership.rx_frame(sender.node_id, frame)
        except wire.FrameError as e:
            self.frame_errors.append((receiver.node_id, sender.node_id, str(e)))
            self.close_links(receiver.node_id, sender.node_id)

    def connect(self, opener: SimNode, address: str) -> None:
        target = next(
            (n for n in self.nodes if n.address == address and n.running), None
        )
        if target is None or target is opener:
            return
        delay = 2 * self._latency_between(opener.node_id, target.node_id)
        self._schedule(delay, self._open, opener, target, opener.generation, target.generation)

    def _open(self, opener: SimNode, listener: SimNode, opener_gen=None, listener_gen=None):
        if opener_gen is not None and (
            opener.generation != opener_gen or listener.generation != listener_gen
        ):
            return
        if not (opener.running and listener.running):
            return
        a, b = opener.node_id, listener.node_id
        self._links[(a, b)] = self._links.get((a, b), 0) + 1
        self._links[(b, a)] = self._links.get((b, a), 0) + 1
        opener.membership.link_up(b, listener.name, listener.address, True)
        listener.membership.link_up(a, opener.name, opener.address, False)

    def close_after_frames(self, a: str, b: str) -> None:
        """
        Close every link between C{a} and C{b} once the frames already
        sent on them arrived.
        """
        self._schedule(self._latency_between(a, b), self.close_links, a, b)

    def close_links(self, a: str, b: str) -> None:
        """
        Close every link between C{a} and C{b}; both ends hear of it.
        """
        count = self._links.pop((a, b), 0)
        self._links.pop((b, a), None)
        for _ in range(count):
            for here, there in ((a, b), (b, a)):
                node = self.by_id[here]
                if node.running:
                    node.membership.link_down(there)

    def kill(self, node: SimNode) -> None:
        """
        C{kill -9}: the node stops at once; its peers' links drop.
        """
        node.running = False
        for peer_id in self.neighbours(node.node_id):
            self.close_links(node.node_id, peer_id)

    def freeze(self, node: SimNode) -> None:
        """
        The node hangs (or its network silently fails): it stops ticking
        and receiving, but its links stay open.
        """
        node.running = False

    def pause(self, node: SimNode, seconds: float) -> None:
        """
        The node stalls for C{seconds} (a long garbage collection, a
        stopped process): it neither ticks nor reads, its links stay
        open, and what was sent to it waits; then it goes on.
        """
        node.paused_until = max(node.paused_until, self.clock.seconds() + seconds)

    def leave(self, node: SimNode, linger_s: float = 0.1) -> None:
        """
        Graceful stop: the node announces its leave, then closes its links
        and stops C{linger_s} later (frames already sent still arrive).
        """
        node.membership.leave()

        def stop():
            node.running = False
            for peer_id in self.neighbours(node.node_id):
                self.close_links(node.node_id, peer_id)

        self._schedule(linger_s, stop)

    # Running

    def run(self, seconds: float) -> None:
        """
        Run every event due in the next C{seconds}.
        """
        end = self.clock.seconds() + seconds
        events = self._events
        clock = self.clock
        while events and events[0][0] <= end:
            at, _, call, args = heapq.heappop(events)
            if at > clock.seconds():
                clock.advance(at - clock.seconds())
            call(*args)
        if end > clock.seconds():
            clock.advance(end - clock.seconds())

    def run_until(
        self, predicate: Callable[[], bool], limit_s: float, step_s: Optional[float] = None
    ) -> Optional[float]:
        """
        Run in steps of C{step_s} (a gossip interval) until C{predicate()}.

        @return: the time it took, or C{None} if not within C{limit_s}.
        """
        step_s = step_s or self.config.gossip_interval_s
        start = self.clock.seconds()
        while self.clock.seconds() - start < limit_s - 1e-9:
            self.run(step_s)
            if predicate():
                return self.clock.seconds() - start
        return None

    # Looking

    def running(self) -> List[SimNode]:
        """@return: the nodes that are running."""
        return [n for n in self.nodes if n.running]

    def neighbours(self, node_id: str) -> List[str]:
        """
        @return: the ids linked to C{node_id}.
        """
        return sorted({b for (a, b), count in self._links.items() if a == node_id and count})

    def state_of(self, observer: SimNode, node_id: str) -> Optional[str]:
        """@return: the state C{observer} shows for C{node_id}, or C{None}."""
        member = observer.membership.member(node_id)
        return None if member is None else member.state

    def everyone_sees(self, node_id: str, state: Optional[str]) -> bool:
        """
        @return: whether every running node but C{node_id} shows it in
            C{state} (C{None}: does not list it).
        """
        return all(
            self.state_of(n, node_id) == state for n in self.running() if n.node_id != node_id
        )

    def converged(self) -> bool:
        """
        @return: whether every running node shows every other running,
            visible node as alive.
        """
        live = [n for n in self.running() if not n.membership.hidden]
        for observer in self.running():
            for node in live:
                if node is not observer and self.state_of(observer, node.node_id) != ALIVE:
                    return False
        return True

    def connected(self) -> bool:
        """@return: whether the links join all running nodes into one graph."""
        running = self.running()
        if not running:
            return True
        seen = {running[0].node_id}
        todo = [running[0].node_id]
        while todo:
            for peer_id in self.neighbours(todo.pop()):
                if peer_id not in seen:
                    seen.add(peer_id)
                    todo.append(peer_id)
        return seen >= {n.node_id for n in running}

    def degrees(self) -> List[int]:
        """@return: how many distinct peers each running node is linked to."""
        return [len(self.neighbours(n.node_id)) for n in self.running()]

    def false_alarms(self, since: float = 0.0) -> list:
        """
        @return: the changes since C{since} that showed a running node as
            anything but alive.
        """
        return [
            change for change in self.changes
            if change[0] >= since and change[4] != ALIVE and self.by_id[change[2]].running
        ]

