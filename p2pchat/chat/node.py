"""
The composition root of one node: builds its rooms and wires them.

L{ChatNode} does no work of its own.  It builds the L{Feed} (log/), the
L{Relay} with its replicator (log/), the L{Links} with their membership
(mesh/) and one L{ChatService} (chat/) for the node's local author, connects
their events, and runs the periodic tick and the orderly stop.
"""

import time
from typing import Callable, Dict, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from p2pchat.chat.convergence import Convergence, convergence
from p2pchat.chat.names import Names
from p2pchat.chat.service import ChatService, LocalAuthor
from p2pchat.config import PeerAddress
from p2pchat.log.feed import Feed
from p2pchat.log.identity import Identity
from p2pchat.log.relay import FRAME_TYPES, Relay
from p2pchat.log.replication import ReplicationConfig
from p2pchat.log.store import Store
from p2pchat.log.verifier import InlineVerifier
from p2pchat.mesh.convergence import DIGESTS_VERSION, Digests
from p2pchat.mesh.links import Links
from p2pchat.mesh.membership import MembershipConfig
from p2pchat.ops.metrics import Metrics
from p2pchat.ops.stall import StallMonitor
from p2pchat.trust.attest import Attestations


class ChatNode:
    """
    One p2pchat node: its rooms, built and wired.

    @ivar feed: ingest, batching and the Lamport clock (L{Feed}).
    @ivar relay: the replicator and its wiring (L{Relay}).
    @ivar links: the link table, the L{IPeerHandler} (L{Links}).
    @ivar membership: the links' L{Membership}.
    @ivar chat: the chat API for the node's local author (L{ChatService}).
    @ivar port: the peer port, for C{/status}.
    @ivar on_change: called when links or committed entries changed.
    """

    def __init__(
        self,
        identity: Identity,
        store: Store,
        name: str,
        clock: IReactorTime,
        advertised_address: Optional[str],
        port: Optional[int] = None,
        connect: Optional[Callable[[PeerAddress], bool]] = None,
        disconnect: Optional[Callable[[PeerAddress], bool]] = None,
        wall_clock: Callable[[], float] = time.time,
        replication: Optional[ReplicationConfig] = None,
        metrics: Optional[Metrics] = None,
        membership: Optional[MembershipConfig] = None,
        dial: Optional[Callable[[PeerAddress], None]] = None,
        attestations: Optional[Attestations] = None,
        attest: Optional[Callable[[str, str], dict]] = None,
        verifier: Callable[[Callable], object] = InlineVerifier,
    ):
        self.identity = identity
        self.store = store
        self.port = port
        self.metrics = metrics or Metrics()
        self.stalls = StallMonitor(clock)
        self.on_change: Callable[[], None] = lambda: None
        self._clock = clock
        self._attest = attest
        self._ticker: Optional[LoopingCall] = None
        self.feed = Feed(store, clock, wall_clock, self.metrics, attestations, verifier)
        self.relay = Relay(
            clock, self.feed, lambda link: self.links.producer(link), self.metrics, replication
        )
        self.links = Links(
            identity, name, advertised_address, clock, self.relay.new_producer,
            membership, incarnation=int(wall_clock()), dial=dial,
        )
        self.membership = self.links.membership
        self.links.observers.append(self.relay)
        self.links.route(FRAME_TYPES, self.relay.rx_frame)
        self.links.on_change = lambda: self.on_change()
        self._wall_clock = wall_clock
        #: Members' signed log digests, for /converged (protocol 4 links).
        self.digests = Digests(
            clock, wall_clock, identity.node_id, identity.sign,
            lambda: (store.count(), store.digest()),
            lambda node_id: self.membership.member(node_id) is not None,
            lambda: self.membership.alive_count() + 1,
        )
        self.links.observers.append(self.digests)
        self.links.route(["digests"], self.digests.rx_frame)
        author = LocalAuthor(identity, name)
        names = Names(self.membership, attestations, lambda: {identity.node_id})
        self.chat = ChatService(
            author, self.feed, self.links, names, clock, self._facts, connect, disconnect,
            wall_clock, self.relay.progress.snapshot, self.converged,
            lambda: (self.relay.progress.known_missing, self.relay.progress.catching_up),
        )
        self.links.member_watchers.append(self.chat.member_changed)
        self.feed.subscribe(self.chat)
        self.feed.subscribe(self.relay)
        self.feed.on_change = lambda: self.on_change()

    @property
    def node_id(self) -> str:
        return self.identity.node_id

    @property
    def advertised_address(self) -> Optional[str]:
        """
        The C{host:port} this node tells peers to reach it at, or C{None}.
        """
        return self.membership.address

    @advertised_address.setter
    def advertised_address(self, address: Optional[str]) -> None:
        self.membership.address = address

    @property
    def stopping(self) -> bool:
        return self.links.stopping

    def start(self) -> None:
        """
        Post the author's certificate if it is new, and start the periodic
        work every C{announce_interval_s}.
        """
        attestations = self.feed.attestations
        if self._attest is not None and attestations.names.get(self.node_id) != self.chat.name:
            # Post this node's certificate once (again after a new one), so
            # nodes that never link to it can check its name.
            self.chat.certify(self._attest(self.node_id, self.chat.name))
        self.stalls.start()
        self._ticker = LoopingCall(self.tick)
        self._ticker.clock = self._clock
        self._ticker.start(self.relay.config.announce_interval_s, now=False)

    def tick(self) -> None:
        """
        One round of periodic work: links, membership, replication.
        """
        self.links.tick()
        self.membership.tick()
        self.relay.replicator.tick()
        self.chat.catch_up.tick()
        self.digests.tick()

    def flush(self) -> None:
        self.feed.flush()

    def _facts(self) -> Dict[str, object]:
        feed = self.feed
        feed.flush()
        return {
            "port": self.port if self.port is not None else "none",
            "messages": self.store.count(),
            "peers": self.membership.alive_count(),
            "links": len(self.links),
            "digest": self.store.digest(),
            "forks": feed.forks,
            "blocked": len(self.chat.blocked()),
            "entries_received": feed.entries_received,
            "duplicates_received": feed.duplicates_received,
            **{"live_" + key: value for key, value in self.relay.replicator.counts.items()},
            "replication_lag": self.replication_lag(),
            "catching_up": self.relay.progress.catching_up,
            "longest_reactor_turn_ms": round(self.stalls.longest_s * 1000, 1),
            "longest_store_call_ms": round(feed.longest_store_call_s * 1000, 1),
        }

    def converged(self) -> Convergence:
        """
        @return: how many members (alive or suspect) hold exactly what this
            node holds, by their signed digest records.
        """
        self.feed.flush()
        ids = [m.node_id for m in self.membership.members() if m.state in ("alive", "suspect")]
        own = (self.store.count(), self.store.digest())
        return convergence(own, ids, self.digests.records, self._wall_clock(), self._older)

    def _older(self, node_id: str) -> bool:
        link = self.links.link_to(node_id)
        return link is not None and (link.version or 0) < DIGESTS_VERSION

    def replication_lag(self) -> int:
        """
        @return: entries known to exist (claimed by linked peers' summaries)
            but not held, or announced ids not held yet if more (both bounded).
        """
        return max(self.relay.progress.known_missing, len(self.relay.replicator.missing))

    def metrics_status(self) -> Dict[str, object]:
        """
        The levels Prometheus scrapes (cheap: no flush, no digest), and the
        traffic counters brought up to date.
        """
        bytes_in, bytes_out = self.links.new_traffic()
        self.metrics.bytes_in(bytes_in)
        self.metrics.bytes_out(bytes_out)
        states: Dict[str, int] = {}
        for member in self.membership.members():
            states[member.state] = states.get(member.state, 0) + 1
        return {
            "messages": self.store.count(),
            "links": len(self.links),
            "peer_states": states,
            "replication_lag": self.replication_lag(),
            "longest_reactor_turn_s": self.stalls.longest_s,
        }

    def stop(self) -> None:
        """
        Stop taking entries and links, commit what is queued, and say
        goodbye on every link.  The store can be closed afterwards.
        """
        self.links.stopping = True
        self.stalls.stop()
        if self._ticker is not None and self._ticker.running:
            self._ticker.stop()
        self.feed.stop()
        self.links.leave()
