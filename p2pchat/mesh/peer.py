"""
The peer link: frames JSON lines on a TCP (or TLS) stream and runs the
hello handshake.  Everything it receives after the handshake is handed to an
L{IPeerHandler}; it decides nothing itself.

Link-level frames have a per-link budget (L{LINK_FRAMES_PER_S} pings and
pongs); peer-supplied text is escaped (L{p2pchat.safe.printable}) before it
is logged, and what an unidentified peer can log at will is rate-limited.

Memory per link: about 128 KiB of unparsed input at most (a partial line
under L{wire.MAX_LINE_BYTES}, a longer one closes the link, plus one socket
read, also while the link is paused), plus what the transport buffers for
writing: large replies go through L{p2pchat.log.streaming} and stop while the
transport is full; other frames written while it is full count against
L{MAX_UNREAD_BYTES}, past which the link is closed.  Before its hello
a link holds one of at most L{MAX_PENDING_HANDSHAKES} slots per factory
(L{p2pchat.mesh.handshakes}), so pre-hello input is at most 64 x 128 KiB = 8 MiB
per factory; every close is forced after L{CLOSE_DEADLINE_S}.
"""

from typing import Any, Callable, Dict, List, Optional

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener, IReactorTime, IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from p2pchat.log.identity import short_id
from p2pchat.mesh import wire
from p2pchat.mesh.handshakes import MAX_PENDING_HANDSHAKES, MAX_PENDING_PER_ADDRESS, PendingSlots
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import LogLimiter, printable
from p2pchat.trust import binding, refusals, tls

# Per link: live entries (pushed as they are posted) and sync entries
# (streamed to catch a node up) have separate budgets, so catch-up stays
# fast while a member flooding new posts is held to a chat-like rate.
LIVE_ENTRIES_PER_S = 1_000
LIVE_ENTRY_BURST = 5_000
SYNC_ENTRIES_PER_S = 10_000
SYNC_ENTRY_BURST = 20_000
# ping and pong, together, per link: a keep-alive is one every 5 s.
LINK_FRAMES_PER_S = 2.0
LINK_FRAME_BURST = 20
CLOSE_DEADLINE_S = 10.0
SYNC_WINDOW_S = 60.0
KEEPALIVE_INTERVAL_S = 5.0
IDLE_TIMEOUT_S = 15.0
# Bytes of frames written outside the link's producer (announcements,
# gossip, pongs) while its transport is full: a peer that reads nothing for
# that long is closed instead of making this node buffer the network's
# chatter for it without bound.  Above the largest honest burst: gossip
# waits for a paused link and sends at most membership.FLUSH_ROWS_PER_TICK
# (500) rows of at most about 730 bytes per tick, about 365 KB, some of it
# written after the transport paused; the rest is announcements by id.
MAX_UNREAD_BYTES = 2 * 1024 * 1024


class HandshakeFailed(Exception):
    """
    The link closed, or the peer misbehaved, before the hello exchange
    finished.
    """


class IPeerHandler(Interface):
    """
    What a L{PeerProtocol} reports to: the node's link-level logic.
    """

    def local_hello() -> Dict[str, Any]:
        """
        @return: the hello frame to send on a new link.
        """

    def link_up(link: "PeerProtocol") -> Optional[str]:
        """
        A link finished its handshake; C{link.remote_*} are set.

        @return: C{None} to accept it, or a reason to refuse it.
        """

    def link_down(link: "PeerProtocol") -> None:
        """
        An accepted link closed.
        """

    def rx_frame(link: "PeerProtocol", frame: Dict[str, Any]) -> None:
        """
        A valid frame other than hello, error, ping, pong or bye arrived on
        an accepted link.
        """

    def sign_binding(material: bytes) -> str:
        """
        Sign a TLS session's exporter value with the node's identity key,
        for the C{bind} field of the hello on a TLS link.
        """

    def link_misbehaved(link: "PeerProtocol") -> None:
        """
        An accepted link is being closed because its peer sent invalid
        input.
        """


@implementer(IHandshakeListener)
class PeerProtocol(LineReceiver):
    """
    One peer link.

    @ivar remote_id: the peer's node id, once its hello arrived.
    @ivar remote_name: the peer's display name, once its hello arrived.
    @ivar remote_address: the address the peer says it listens on, or
        C{None}.
    @ivar outbound: whether this node opened the link.
    @ivar handshake_done: a L{Deferred} that fires with this protocol when
        the handshake succeeds, or fails with L{HandshakeFailed}.  It is
        made only when asked for, so a failed inbound handshake that nobody
        waits on leaves no unhandled error behind.
    @ivar max_unread_bytes: see L{MAX_UNREAD_BYTES}.
    """

    delimiter = b"\n"
    MAX_LENGTH = wire.MAX_LINE_BYTES
    max_unread_bytes = MAX_UNREAD_BYTES
    log = Logger()

    def __init__(
        self,
        handler: IPeerHandler,
        clock: IReactorTime,
        outbound: bool,
        handshake_timeout_s: float,
        live_bucket: Optional[TokenBucket] = None,
        sync_bucket: Optional[TokenBucket] = None,
    ):
        self._handler = handler
        self._buckets = {False: live_bucket, True: sync_bucket}
        self._resume_call = None
        self._clock = clock
        self.outbound = outbound
        self._handshake_timeout_s = handshake_timeout_s
        self._timeout_call = None
        self._accepted = False
        self._closing = False
        self.remote_id: Optional[str] = None
        self.remote_name: Optional[str] = None
        self.remote_address: Optional[str] = None
        self._handshake_outcome = None
        self._handshake_waiter: Optional[Deferred] = None
        self._lost_callbacks: List[Callable[[Failure], None]] = []
        self._spoke = False
        self._peer_spoke = False
        self.bytes_in = 0
        self.bytes_out = 0
        #: Bytes written outside the producer since the transport paused it.
        self.unread_bytes = 0
        self.remote_error: Optional[str] = None
        self._sync_until = float("-inf")
        self.remote_links = 0
        self._producer = None
        self._last_rx = self._last_tx = clock.seconds()
        self._keepalive_call = None
        self._abort_call = None
        self._link_frames = TokenBucket(LINK_FRAMES_PER_S, LINK_FRAME_BURST, clock)

    def __repr__(self) -> str:
        return f"<PeerProtocol {self.describe()}>"

    def describe(self) -> str:
        """
        @return: how log lines name this peer: C{name (shortid) at host:port}.
        """
        peer = self.transport.getPeer() if self.transport else None
        where = f"{peer.host}:{peer.port}" if hasattr(peer, "host") else "?"
        if self.remote_id is None:
            return f"unidentified peer at {where}"
        return f"{printable(self.remote_name)} ({short_id(self.remote_id)}) at {where}"

    def _warn(self, kind: str, format: str, **fields) -> None:
        """
        Log a warning an unidentified peer can trigger at will: at most one
        of each C{kind} per interval, through the factory's L{LogLimiter}.
        """
        limiter = getattr(self.factory, "log_limiter", None)
        if limiter is None:
            self.log.warn(format, **fields)
        else:
            limiter.log(kind, self.log.warn, format, **fields)

    # Framing and handshake

    def dataReceived(self, data: bytes) -> None:
        if not self.bytes_in and refusals.looks_like_tls(data) and (
            tls.tls_connection(self.transport) is None
        ):
            self.bytes_in += len(data)
            self.close(refusals.PLAIN_MEETS_TLS)
            return
        self.bytes_in += len(data)
        self._last_rx = self._clock.seconds()
        super().dataReceived(data)

    def _keepalive(self) -> None:
        """
        Every L{KEEPALIVE_INTERVAL_S}: close the link if the peer has been
        silent for L{IDLE_TIMEOUT_S} (a dead or partitioned peer whose TCP
        connection lingers), else send a C{ping} if we have been silent,
        so the peer's own check sees us.
        """
        self._keepalive_call = None
        now = self._clock.seconds()
        if now - self._last_rx >= IDLE_TIMEOUT_S:
            self.close(f"silent for {now - self._last_rx:.0f} s")
            return
        if now - self._last_tx >= KEEPALIVE_INTERVAL_S:
            self.send_frame({"type": "ping"})
        self._keepalive_call = self._clock.callLater(KEEPALIVE_INTERVAL_S, self._keepalive)

    def connectionMade(self) -> None:
        self._timeout_call = self._clock.callLater(
            self._handshake_timeout_s, self._handshake_timed_out
        )
        if not self.outbound and tls.tls_connection(self.transport) is None:
            self._send_hello()

    def handshakeCompleted(self) -> None:
        """
        The TLS handshake finished: the listener can now send its hello,
        which signs this session's exporter value.
        """
        if not self.outbound and not self._spoke and not self._closing:
            self._send_hello()

    def _send_hello(self) -> None:
        self._spoke = True
        hello = self._handler.local_hello()
        material = binding.binding_material(self.transport)
        if material is not None:
            hello[binding.BINDING_FIELD] = self._handler.sign_binding(material)
        self.send_frame(hello)

    def _handshake_timed_out(self) -> None:
        self._timeout_call = None
        tls_link = tls.tls_connection(self.transport) is not None
        heard = self._spoke if tls_link and not self.outbound else self.bytes_in > 0
        hint = refusals.silence_hint(tls_link, self.outbound, heard)
        self.close(f"no hello within {self._handshake_timeout_s:g} s{hint}")

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            return
        try:
            frame = wire.parse_frame(line)
        except wire.FrameError as e:
            self.close(f"bad frame: {e}", misbehaved=True)
            return
        self._peer_spoke = True
        frame_type = frame["type"]
        confirms = self._accepted and frame_type not in ("error", "bye")
        if frame_type == "error":
            self._rx_error(frame["reason"])
        elif frame_type == "bye":
            self._lose_connection()
        elif not self._accepted:
            if frame_type != "hello":
                self.close(f"expected hello, got {printable(frame_type, 40)}")
            else:
                self._rx_hello(frame)
        elif frame_type == "hello":
            self.close("second hello on one link")
        elif frame_type in ("ping", "pong"):
            if not self._link_frames.take():
                self.close(f"more than {LINK_FRAMES_PER_S:g} pings/s", misbehaved=True)
            elif frame_type == "ping":
                self.send_frame({"type": "pong"})
        else:
            if frame_type == "entry":
                self._throttle(frame.get("sync", False))
            self._handler.rx_frame(self, frame)
        if confirms and self._accepted and self._handshake_outcome is None:
            self._handshake_finished(self)

    def _rx_error(self, reason: str) -> None:
        """
        The peer closes the link.  Its reason is logged escaped; rate-limited
        from an unidentified inbound peer (it can send one per connection).
        """
        self.remote_error = reason[:200]
        if self._accepted or self.outbound:
            self.log.info(
                "peer {peer} reported an error: {reason}",
                peer=self.describe(),
                reason=printable(reason, 200),
            )
        else:
            self._warn(
                "error before hello",
                "peer {peer} reported an error before its hello: {reason}",
                peer=self.describe(),
                reason=printable(reason, 80),
            )
        self._lose_connection()

    def _throttle(self, sync: bool) -> None:
        """
        Charge one entry to this link's live or sync token bucket; when it
        runs dry, stop reading from this link (only) until it has refilled.
        Nothing is dropped: the peer's data waits in its socket.
        """
        # The catch-up budget is only for answers to what this node asked
        # for (see expect_sync); anything else is charged as live.
        solicited = sync and self.catching_up
        bucket = self._buckets[solicited]
        if bucket is None:
            return
        self.hold(bucket.charge(1))

    def hold(self, delay_s: float) -> None:
        """
        Stop reading from this link (only) for C{delay_s} seconds, or until
        a longer hold already running ends.  Nothing is dropped: the
        peer's data waits in its socket.
        """
        if delay_s <= 0 or self._closing:
            return
        if self._resume_call is not None:
            if self._resume_call.getTime() >= self._clock.seconds() + delay_s:
                return
            self._resume_call.cancel()
        else:
            self.pauseProducing()
        self._resume_call = self._clock.callLater(delay_s, self._resume)

    @property
    def catching_up(self) -> bool:
        """
        Whether entries this peer marks C{sync} now answer something this
        node asked for (see L{expect_sync}).
        """
        return self._clock.seconds() < self._sync_until

    @property
    def held(self) -> bool:
        """
        Whether this node stopped reading the link for a while (L{hold}):
        the peer's frames wait because of this node, not because it fell
        silent.
        """
        return self._resume_call is not None

    def expect_sync(self, window_s: float = SYNC_WINDOW_S) -> None:
        """
        This node just asked the peer for entries (a summary page or a
        graft): for the next C{window_s}, entries it marks C{sync} are
        charged to the catch-up budget instead of the live one.  (Called
        again with a short C{window_s} when the summary round ends, which
        closes the window soon.)
        """
        self._sync_until = self._clock.seconds() + window_s

    def _resume(self) -> None:
        self._resume_call = None
        if not self._closing and self.transport is not None:
            self.resumeProducing()

    def _rx_hello(self, frame: Dict[str, Any]) -> None:
        if frame["version"] != wire.PROTOCOL_VERSION:
            self.close(
                f"unsupported protocol version {frame['version']}"
                f" (this node speaks {wire.PROTOCOL_VERSION})"
            )
            return
        self.remote_id = frame["id"]
        self.remote_name = frame["name"]
        self.remote_address = frame["addr"]
        self.remote_links = frame.get("links", 0)
        refusal = binding.check_hello(self.transport, frame)
        if refusal is not None:
            self.close(refusal)
            return
        if not self._spoke:
            self._send_hello()
        refusal = self._handler.link_up(self)
        if refusal is not None:
            self.close(refusal)
            return
        self._accepted = True
        if self.factory is not None:
            self.factory.pending.discard(self)
        self._cancel_timeout()
        self._keepalive_call = self._clock.callLater(KEEPALIVE_INTERVAL_S, self._keepalive)
        self.log.info("link up with {peer}", peer=self.describe())
        if not self.outbound:
            self._handshake_finished(self)
        # An outbound link counts as made (for the dialer's back-off) only
        # once the listener shows it took our hello too: its first frame
        # after it, not an error.  A full listener refuses us only after
        # our hello; counting that as a success reset the dialer's back-off
        # and redialled it several times a second.

    def lineLengthExceeded(self, line: bytes) -> None:
        self.close(f"line longer than {self.MAX_LENGTH} bytes", misbehaved=True)

    def _run_lost_callbacks(self, reason: Failure) -> None:
        """
        Tell whoever asked that the connection is lost; one that fails is
        logged and must not keep the others, or this link's own clean-up,
        from running.
        """
        callbacks, self._lost_callbacks = self._lost_callbacks, []
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                self.log.failure("a link-lost callback failed for {peer}", peer=self.describe())

    def notify_on_lost(self, callback: Callable[[Failure], None]) -> None:
        """
        Call C{callback} with the reason when this link's connection is lost.
        """
        self._lost_callbacks.append(callback)

    def connectionLost(self, reason: Failure = None) -> None:
        self._run_lost_callbacks(reason)
        self._cancel_timeout()
        for call in (self._resume_call, self._keepalive_call, self._abort_call):
            if call is not None and call.active():
                call.cancel()
        self._resume_call = self._keepalive_call = self._abort_call = None
        if self.factory is not None:
            self.factory.pending.discard(self)
        if self._accepted:
            self._accepted = False
            self.log.info("link down with {peer}", peer=self.describe())
            self._handler.link_down(self)
            if self._handshake_outcome is None:
                refused = f": {self.remote_error}" if self.remote_error else ""
                self._handshake_finished(
                    Failure(HandshakeFailed(f"{self.describe()} refused the link{refused}"))
                )
        elif self._handshake_outcome is None:
            if reason is not None and reason.check(SSL.Error):
                self._warn(
                    "refused TLS",
                    "refused TLS link with {peer}: {reason}",
                    peer=self.describe(),
                    reason=_tls_reason(reason),
                )
            self._handshake_finished(
                Failure(HandshakeFailed(f"link to {self.describe()} closed before hello"))
            )

    @property
    def handshake_done(self) -> Deferred:
        if self._handshake_waiter is None:
            self._handshake_waiter = Deferred()
            if self._handshake_outcome is not None:
                self._handshake_waiter.callback(self._handshake_outcome)
        return self._handshake_waiter

    def _handshake_finished(self, outcome) -> None:
        self._handshake_outcome = outcome
        if self._handshake_waiter is not None:
            self._handshake_waiter.callback(outcome)

    def _cancel_timeout(self) -> None:
        if self._timeout_call is not None and self._timeout_call.active():
            self._timeout_call.cancel()
        self._timeout_call = None

    # Sending

    @property
    def accepted(self) -> bool:
        """
        Whether the handshake finished and the handler accepted the link.
        """
        return self._accepted

    def send_frame(self, frame: Dict[str, Any]) -> None:
        """
        Send one frame, unless the link is closing.
        """
        if not self._closing and self.transport is not None:
            line = wire.encode_frame(frame)
            if not getattr(self._producer, "paused", False):
                self.unread_bytes = 0
            elif not (frame.get("type") == "entry" and frame.get("sync")):
                # Entries marked sync come from the producer, which stops
                # when paused (one batch at most); anything else written
                # now waits on a peer that has not read for a while.
                self.unread_bytes += len(line) + 1
                if self.unread_bytes > self.max_unread_bytes:
                    self.unread_bytes = 0
                    self.close(
                        f"peer does not read: over {self.max_unread_bytes} bytes of frames "
                        f"wait for it"
                    )
                    return
            self.bytes_out += len(line) + 1
            self._last_tx = self._clock.seconds()
            self.sendLine(line)

    def close(self, reason: str, misbehaved: bool = False) -> None:
        """
        Log why, tell the peer in an error frame, and close the link.

        With C{misbehaved} (the peer sent invalid input), the handler is
        told, so that it can refuse the peer for a while.

        No error frame goes to something that has not spoken the protocol
        on a link where this node has not spoken either (an outbound link
        to, say, a console port by mistake): it would take the frame for
        text.
        """
        if self._closing:
            return
        if self._accepted:
            self.log.warn(
                "closing link with {peer}: {reason}", peer=self.describe(), reason=printable(reason)
            )
        else:
            self._warn(
                "handshake refused",
                "closing link with {peer}: {reason}",
                peer=self.describe(),
                reason=printable(reason),
            )
        if self._spoke or self._peer_spoke:
            self.send_frame(wire.error(reason))
        if misbehaved and self._accepted:
            self._handler.link_misbehaved(self)
        self._lose_connection()

    def set_producer(self, producer) -> None:
        """
        Register C{producer} (a push producer) on this link's transport for
        the link's life; the link unregisters it when it closes.
        """
        self._producer = producer
        self.transport.registerProducer(producer, True)

    def _lose_connection(self) -> None:
        """
        Close the connection after what is already written.  A transport
        does not close while a producer is registered on it (the node's
        entry streamer is, for the link's whole life), so unregister it
        first.
        """
        self._closing = True
        if self._producer is not None:
            self._producer = None
            self.transport.unregisterProducer()
        if self._abort_call is None:
            # A peer that never reads what is still buffered, or (on TLS,
            # after the handshake) never answers our close_notify, would
            # keep the socket open for ever.  connectionLost cancels this.
            self._abort_call = self._clock.callLater(CLOSE_DEADLINE_S, self.abort)
        self.transport.loseConnection()

    def abort(self) -> None:
        """
        Close the connection now, dropping anything unsent.
        """
        self._abort_call = None
        self._closing = True
        if self.transport is not None:
            self.transport.abortConnection()

    def leave(self) -> None:
        """
        Close the link politely with a C{bye} frame.
        """
        self.send_frame({"type": "bye"})
        self._lose_connection()


class PeerFactory(Factory):
    """
    Builds L{PeerProtocol}s for one direction (inbound or outbound).
    """

    noisy = False

    def __init__(
        self,
        handler: IPeerHandler,
        clock: IReactorTime,
        outbound: bool,
        handshake_timeout_s: float = 10.0,
        max_pending: int = MAX_PENDING_HANDSHAKES,
        max_pending_per_address: int = MAX_PENDING_PER_ADDRESS,
    ):
        self.handler = handler
        self.clock = clock
        self.outbound = outbound
        self.handshake_timeout_s = handshake_timeout_s
        self.max_pending = max_pending
        self.pending: PendingSlots[PeerProtocol] = PendingSlots(
            max_pending, min(max_pending, max_pending_per_address)
        )
        self.log_limiter = LogLimiter(clock)

    def buildProtocol(self, addr) -> PeerProtocol:
        """
        Build a link and give it a pending-handshake slot; if there was no
        room, the oldest idle pending connection of the address holding
        the most slots is closed at once instead (L{p2pchat.mesh.handshakes}).
        Never refuses by returning C{None}: under a TLS factory that would
        leave an open socket behind a protocol that is not there.
        """
        protocol = PeerProtocol(
            self.handler,
            self.clock,
            self.outbound,
            self.handshake_timeout_s,
            live_bucket=TokenBucket(LIVE_ENTRIES_PER_S, LIVE_ENTRY_BURST, self.clock),
            sync_bucket=TokenBucket(SYNC_ENTRIES_PER_S, SYNC_ENTRY_BURST, self.clock),
        )
        protocol.factory = self
        victim = self.pending.admit(protocol, getattr(addr, "host", None))
        if victim is not None:
            self.log_limiter.log(
                "evicted",
                PeerProtocol.log.warn,
                "closing {peer}: {count} handshakes pending, the oldest from its address goes",
                peer=victim.describe(),
                count=self.max_pending,
            )
            victim.abort()
        return protocol


def _tls_reason(failure: Failure) -> str:
    """
    @return: what OpenSSL said about a failed TLS handshake, briefly (for
        example C{certificate verify failed}).
    """
    errors = getattr(failure.value, "args", [None])[0]
    if isinstance(errors, list) and errors and isinstance(errors[0], tuple):
        return refusals.explain_tls_failure("; ".join(str(error[-1]) for error in errors))
    return refusals.explain_tls_failure(failure.getErrorMessage())


class LinkHandle(Protocol):
    """
    What a L{HandshakeEndpoint} gives its caller for an accepted link: a
    protocol that shares the link's transport (so closing it closes the
    link) and hears of the link's loss, but never sees its bytes.

    """

    def link_lost(self, link: "PeerProtocol") -> None:
        """
        The link this handle stands for closed (just before
        C{connectionLost}); C{link} tells how (e.g. C{link.remote_error}).
        """


@implementer(IStreamClientEndpoint)
class HandshakeEndpoint:
    """
    A client endpoint whose connections count only once the hello handshake
    has succeeded.

    Given to L{twisted.application.internet.ClientService}, it makes a
    refused or broken handshake a I{failed attempt} (so the service backs
    off further) instead of a connection that drops while
    C{prepareConnection} is pending, which C{ClientService}'s state machine
    does not handle.
    """

    def __init__(self, endpoint: IStreamClientEndpoint, peer_factory: PeerFactory):
        """
        @param endpoint: the transport endpoint (TCP, TLS ...).
        @param peer_factory: builds the L{PeerProtocol} that runs the link.
        """
        self._endpoint = endpoint
        self._peer_factory = peer_factory

    def __repr__(self) -> str:
        return f"<HandshakeEndpoint {self._endpoint}>"

    def connect(self, factory: Factory) -> Deferred:
        """
        Connect, run the handshake, then build C{factory}'s protocol on the
        link's transport.

        @return: a L{Deferred} firing with that protocol, or failing with
            the connection error or L{HandshakeFailed}; cancelling it
            aborts the attempt.
        """
        links: List[PeerProtocol] = []

        def cancel(result: Deferred) -> None:
            if links:
                links[0].transport.abortConnection()
            else:
                attempt.cancel()

        def connected(link: PeerProtocol) -> Deferred:
            links.append(link)
            return link.handshake_done

        def accepted(link: PeerProtocol) -> Protocol:
            handle = factory.buildProtocol(link.transport.getPeer())
            handle.makeConnection(link.transport)

            def lost(reason: Failure) -> None:
                # The handle may be wrapped (ClientService wraps it in a
                # proxy that forwards method lookups but not attribute
                # assignments), so the link is passed, not stored on it.
                handle.link_lost(link)
                handle.connectionLost(reason)

            link.notify_on_lost(lost)
            return handle

        result = Deferred(cancel)
        attempt = self._endpoint.connect(self._peer_factory)
        attempt.addCallback(connected).addCallback(accepted).chainDeferred(result)
        return result
