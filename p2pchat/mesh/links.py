"""
The links: this node's one table of accepted peer links.

L{Links} is the L{IPeerHandler} every L{PeerProtocol} reports to.  It
decides which links are taken (the link cap, HyParView's full-node rule,
penalties for misbehaving peers), sets up each link's producer and answers
whether a link is ready for more (L{Links.ready}), counts traffic, and
routes frames: membership's to the L{Membership} it owns, the others to the
handlers registered with L{Links.route}.  Membership acts on the network
through L{_MembershipOutput}, which uses only Links' public methods.
"""

from typing import Callable, Dict, Iterable, Iterator, List, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import implementer

from p2pchat.addresses import AddressError, parse_peer_address
from p2pchat.config import PeerAddress
from p2pchat.log.identity import Identity, short_id
from p2pchat.mesh import wire
from p2pchat.mesh.handler import IPeerHandler, Routine
from p2pchat.mesh.member_words import log_words
from p2pchat.mesh.membership import IMembershipOutput, Member, Membership, MembershipConfig
from p2pchat.mesh.membership.rows import MAX_HEARTBEAT
from p2pchat.mesh.peer import PeerProtocol
from p2pchat.mesh.wire import FrameError
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import LogLimiter, printable
from p2pchat.trust import binding, tls

MAX_LINKS = 64
PENALTY_S = 60.0
MAX_PENALTY_S = 3600.0
# Membership changes logged before they are rate-limited (see
# _MembershipOutput.member_changed).
MEMBER_LOG_BURST = 100
# How often a protocol-2 peer is sent this node's row with a new heartbeat:
# version 0.2.0 suspects a member whose heartbeat is still for 4 s.
PROTOCOL_2_HEARTBEAT_S = 1.0


@implementer(IPeerHandler)
class Links:
    """
    The accepted links of one node, and what comes in on them.

    Iterating over it gives the accepted links; C{len()} counts them.

    @ivar membership: the node's L{Membership}, fed by these links.
    @ivar stopping: once set, no link is taken.
    @ivar member_watchers: callables told C{(member, old_state)} for
        every change membership reports (C{old_state} is C{None} for a
        member first heard of).
    @ivar observers: objects told C{link_up(link)} / C{link_down(link)}.
    @ivar on_change: called when a link came up or went down.
    """

    log = Logger()

    def __init__(
        self,
        identity: Identity,
        name: str,
        advertised_address: Optional[str],
        clock: IReactorTime,
        producer: Callable[[PeerProtocol], object],
        membership: Optional[MembershipConfig] = None,
        incarnation: int = 0,
        dial: Optional[Callable[[PeerAddress], None]] = None,
    ):
        """
        @param producer: makes the push producer that writes C{link}'s
            large replies (it has C{paused} and C{stopProducing()}).
        @param dial: tries once to open a link to an address.
        """
        self._identity = identity
        self._clock = clock
        self._producer = producer
        self.dial = dial
        self._links: Dict[PeerProtocol, object] = {}
        self._routes: Dict[str, Callable[[PeerProtocol, dict], None]] = {}
        self._penalties: Dict[str, tuple] = {}
        # The heartbeat this node shows protocol-2 peers, and when it is
        # next sent (see _beat_to_protocol_2).
        self._old_heartbeat = 0
        self._next_old_beat = 0.0
        self._closed_traffic = [0, 0]
        self._counted_traffic = [0, 0]
        self.stopping = False
        self.member_watchers: List[Callable[[Member, Optional[str]], None]] = []
        self.observers: List[object] = []
        self.on_change: Callable[[], None] = lambda: None
        self.membership = Membership(
            identity.node_id, name, advertised_address, clock,
            _MembershipOutput(self, clock), membership or MembershipConfig(),
            incarnation=incarnation, signer=identity.sign,
        )

    def __iter__(self) -> Iterator[PeerProtocol]:
        return iter(list(self._links))

    def __len__(self) -> int:
        return len(self._links)

    def route(self, frame_types: Iterable[str], handler: Callable[[PeerProtocol, dict], None]):
        """
        Hand frames of C{frame_types} to C{handler(link, frame)}; a
        L{FrameError} it raises closes the link as misbehaving.
        """
        for frame_type in frame_types:
            self._routes[frame_type] = handler

    def link_to(self, node_id: str) -> Optional[PeerProtocol]:
        """
        @return: an accepted link to C{node_id}, or C{None}.
        """
        for link in self._links:
            if link.remote_id == node_id:
                return link
        return None

    def producer(self, link: PeerProtocol):
        """
        @return: the producer of an accepted C{link}, or C{None}.
        """
        return self._links.get(link)

    def ready(self, node_id: str) -> bool:
        """
        @return: whether frames to C{node_id} may be written now: no link,
            or one whose transport has not paused its producer.
        """
        link = self.link_to(node_id)
        return link is None or not self.paused(link)

    def paused(self, link: PeerProtocol) -> bool:
        """
        @return: whether C{link}'s transport buffer is full (it paused the
            link's producer).
        """
        producer = self._links.get(link)
        return producer is not None and producer.paused

    # The peer handler interface

    def local_hello(self) -> dict:
        membership = self.membership
        return wire.hello(self._identity.node_id, membership.name, membership.address, len(self))

    def sign_binding(self, material: bytes) -> str:
        return binding.sign_binding(self._identity, material)

    def link_misbehaved(self, link: PeerProtocol) -> None:
        """
        Refuse the peer's id for L{PENALTY_S}, doubling at each repeat up
        to L{MAX_PENALTY_S}: a peer that keeps sending invalid input is
        backed off, not re-admitted at once.  Only on TLS links, where the
        hello's id is proven (see L{p2pchat.trust.binding.check_hello}): on plain
        TCP an id is a claim, and penalising it would let anyone get
        another node refused.
        """
        if tls.tls_connection(link.transport) is None:
            return
        _, strikes = self._penalties.get(link.remote_id, (0.0, 0))
        penalty_s = min(PENALTY_S * 2**strikes, MAX_PENALTY_S)
        self._penalties[link.remote_id] = (self._clock.seconds() + penalty_s, strikes + 1)
        self.log.warn(
            "refusing {peer} for {seconds:.0f} s after invalid input",
            peer=link.describe(), seconds=penalty_s,
        )

    def at(self, address: PeerAddress) -> List[PeerProtocol]:
        """
        @return: the accepted links at C{address}: the peer advertises it,
            or the link's transport is connected to it.
        """
        found = []
        for link in self._links:
            get_peer = getattr(link.transport, "getPeer", None)
            peer = get_peer() if get_peer is not None else None
            if link.remote_address == str(address) or (
                getattr(peer, "host", None) == address.host
                and getattr(peer, "port", None) == address.port
            ):
                found.append(link)
        return found

    def close_at(self, address: PeerAddress, reason: str) -> int:
        """
        Close the accepted links at C{address}.

        @return: how many.
        """
        found = self.at(address)
        for link in found:
            link.close(reason)
        return len(found)

    def _initiator(self, link: PeerProtocol) -> str:
        return self._identity.node_id if link.outbound else link.remote_id

    def link_up(self, link: PeerProtocol) -> Optional[str]:
        twin = self.link_to(link.remote_id)
        refusal = self._refusal(link, replacing=twin is not None)
        if refusal is not None:
            return refusal
        if twin is not None:
            # Two links to one peer (both dialled at once, or one dialled
            # an address the other already linked from): both sides keep
            # the link opened by the lower node id, and the first one if
            # one side opened both.
            if self._initiator(link) >= self._initiator(twin):
                return Routine(f"already linked to {short_id(link.remote_id)}")
            self.link_down(twin)
            twin.close(Routine(f"replaced by the link opened by {short_id(self._initiator(link))}"))
        producer = self._links[link] = self._producer(link)
        link.set_producer(producer)
        for observer in list(self.observers):
            observer.link_up(link)
        self.membership.link_up(
            link.remote_id, link.remote_name, link.remote_address, link.outbound
        )
        self.on_change()
        return None

    def _refusal(self, link: PeerProtocol, replacing: bool = False) -> Optional[str]:
        """
        @param replacing: C{link} replaces a link to the same peer.
        @return: why C{link} is not taken, or C{None}.
        """
        if self.stopping:
            return "node is stopping"
        if link.remote_id == self._identity.node_id:
            return Routine("connected to self")
        until = self._penalties.get(link.remote_id, (0.0, 0))[0]
        if self._clock.seconds() < until:
            return f"refused for {until - self._clock.seconds():.0f} s more after invalid input"
        if replacing:
            return None
        if len(self) >= MAX_LINKS:
            return f"too many links (at most {MAX_LINKS})"
        config = self.membership.config
        if (
            not link.outbound
            and link.remote_links > 0
            and len(self) >= config.max_links + config.link_slack
        ):
            # HyParView's rule: a full node takes no new neighbour that
            # already has links (it would only have to drop another one),
            # but always takes a joiner, which has none.
            return Routine("this node has all the links it wants; try another member")
        return None

    def link_down(self, link: PeerProtocol) -> None:
        if link not in self._links:
            # Already taken down when a twin replaced it.
            return
        producer = self._links.pop(link, None)
        for observer in list(self.observers):
            observer.link_down(link)
        self.membership.link_down(link.remote_id)
        if producer is not None:
            producer.stopProducing()
        self._closed_traffic[0] += link.bytes_in
        self._closed_traffic[1] += link.bytes_out
        self.on_change()

    def rx_frame(self, link: PeerProtocol, frame: dict) -> None:
        self.membership.heard_from(link.remote_id)
        frame_type = frame["type"]
        handler = self._routes.get(frame_type)
        if frame_type not in Membership.frame_types and handler is None:
            return
        try:
            if frame_type in Membership.frame_types:
                self.membership.rx_frame(link.remote_id, frame)
            else:
                handler(link, frame)
        except FrameError as e:
            link.close(f"bad frame: {e}", misbehaved=True)

    # Periodic work and accounting

    def tick(self) -> None:
        """
        Count held links as heard from, and forget penalties an hour after
        they end.
        """
        for link in self._links:
            if link.held:
                # We are not reading it: its silence is ours, not its.
                self.membership.heard_from(link.remote_id)
        self._beat_to_protocol_2()
        if self._penalties:
            now = self._clock.seconds()
            # Keep the strike count for an hour after a penalty ends, so a
            # repeat offender's back-off still grows; then forget it.
            self._penalties = {
                node_id: (until, strikes)
                for node_id, (until, strikes) in self._penalties.items()
                if now < until + MAX_PENALTY_S
            }

    def _beat_to_protocol_2(self) -> None:
        """
        A protocol-2 peer has no probes: it judges a member alive while
        the member's heartbeat advances, and this node's stays 0 (its
        liveness is probed).  So once every L{PROTOCOL_2_HEARTBEAT_S}, each
        link to such a peer gets this node's row with the next heartbeat
        (not part of the signed statement), and the peer stops suspecting
        it every few seconds.  Links of protocol 3 never see these rows.
        """
        now = self._clock.seconds()
        if now < self._next_old_beat:
            return
        old = [link for link in self._links if (link.version or 0) < wire.PROBES_VERSION]
        if not old:
            return
        row = self.membership.own_row()
        if row["state"] != "alive":
            return
        self._next_old_beat = now + PROTOCOL_2_HEARTBEAT_S
        self._old_heartbeat = min(self._old_heartbeat + 1, MAX_HEARTBEAT)
        frame = wire.gossip([dict(row, hb=self._old_heartbeat)])
        for link in old:
            link.send_frame(frame)

    def new_traffic(self) -> List[int]:
        """
        @return: bytes C{[in, out]} on every link, closed or open, since
            the last call.
        """
        live = [sum(link.bytes_in for link in self._links),
                sum(link.bytes_out for link in self._links)]
        totals = [closed + now for closed, now in zip(self._closed_traffic, live)]
        new = [max(0, total - counted) for total, counted in zip(totals, self._counted_traffic)]
        self._counted_traffic = totals
        return new

    def leave(self) -> None:
        """
        Take no more links, announce this node's leave and say goodbye on
        every link.
        """
        self.stopping = True
        self.membership.leave()
        for link in list(self._links):
            link.leave()


@implementer(IMembershipOutput)
class _MembershipOutput:
    """
    Carries out what a node's L{Membership} asks for, over its L{Links}.
    """

    log = Logger()

    def __init__(self, links: Links, clock: IReactorTime):
        self._links = links
        self._clock = clock
        # A flood of fake members changes state by the thousand: the
        # first lines (refilled at 1/s) are logged, then one per kind of
        # change per 10 s with the count held back.
        self._lines = TokenBucket(1.0, MEMBER_LOG_BURST, clock)
        self._limiter = LogLimiter(clock)

    def send(self, peer_id: str, frame: dict) -> None:
        link = self._links.link_to(peer_id)
        if link is None:
            return
        if frame["type"] in wire.PROBE_FRAMES and (link.version or 0) < wire.PROBES_VERSION:
            # A protocol-2 peer closes a link on frames it does not know:
            # it is not probed; its open link (kept alive by pings, closed
            # after IDLE_TIMEOUT_S of silence) answers for it.
            if frame["type"] == "probe":
                self._clock.callLater(
                    0, self._links.membership.rx_frame, peer_id, wire.probe_ack(frame["seq"])
                )
            return
        link.send_frame(frame)

    def ready(self, peer_id: str) -> bool:
        return self._links.ready(peer_id)

    def connect(self, address: str) -> None:
        if self._links.dial is None:
            return
        try:
            target = parse_peer_address(address)
        except AddressError as e:
            self.log.info(
                "not connecting to {address}: {reason}",
                address=printable(address), reason=printable(str(e)),
            )
            return
        self._links.dial(target)

    def disconnect(self, peer_id: str, reason: str) -> None:
        for link in [link for link in self._links if link.remote_id == peer_id]:
            self.log.info(
                "closing link with {peer}: {reason}",
                peer=printable(link.describe()), reason=printable(reason),
            )
            link.leave()

    def member_changed(self, member: Member, old_state: Optional[str]) -> None:
        who = f"{printable(member.name)} ({short_id(member.node_id)})"
        change = log_words(old_state, member.state)
        if self._lines.take():
            self.log.info("member {who} {change}", who=who, change=change)
        else:
            # Kinds: a fixed set of state pairs (rows carry only known states).
            self._limiter.log(
                f"{old_state}>{member.state}", self.log.info,
                "member {who} {change}", who=who, change=change,
            )
        for watcher in list(self._links.member_watchers):
            watcher(member, old_state)
