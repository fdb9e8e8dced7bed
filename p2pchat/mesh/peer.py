"""
The peer link: frames JSON lines on a TCP (or TLS) stream and runs the
hello handshake.  Everything it receives after the handshake is handed to an
L{IPeerHandler}; it decides nothing itself.

Link-level frames and entries have per-link budgets (L{p2pchat.mesh.budgets});
peer-supplied text is escaped (L{p2pchat.safe.printable}) before it
is logged, and what an unidentified peer can log at will is rate-limited.

Memory per link: about 128 KiB of unparsed input at most (a partial line
under L{wire.MAX_LINE_BYTES}, a longer one closes the link, plus one socket
read, also while the link is paused), plus what the transport buffers for
writing: large replies go through L{p2pchat.log.streaming} and stop while the
transport is full; other frames written while it is full count against
L{MAX_UNREAD_BYTES}, past which the link is closed.  Before its hello a
link holds one of at most 64 pending-handshake slots per factory
(L{p2pchat.mesh.handshakes}), so pre-hello input is at most 64 x 128 KiB =
8 MiB per factory; every close is forced after L{CLOSE_DEADLINE_S}.
"""

from typing import Any, Callable, Dict, Optional

from OpenSSL import SSL
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IHandshakeListener, IReactorTime
from twisted.logger import Logger
from twisted.protocols.basic import LineReceiver
from twisted.python.failure import Failure
from zope.interface import implementer

from p2pchat.log.identity import short_id
from p2pchat.mesh import wire
from p2pchat.mesh.budgets import (
    LINK_FRAME_BURST,
    LINK_FRAMES_PER_S,
    MAX_UNREAD_BYTES,
    SYNC_WINDOW_S,
    EntryBudget,
)
from p2pchat.mesh.handler import IPeerHandler, Routine
from p2pchat.mesh.hello import HandshakeFailed, HandshakeOutcome, signed_hello, tls_failure_reason
from p2pchat.mesh.keepalive import KeepAlive
from p2pchat.mesh.lost import LostCallbacks
from p2pchat.mesh.raw_entry import lazy_entry_frame
from p2pchat.ratelimit import TokenBucket
from p2pchat.safe import printable
from p2pchat.throttle import ReadThrottle
from p2pchat.trust import binding, refusals, tls

CLOSE_DEADLINE_S = 10.0


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
        the handshake succeeds, or fails with L{HandshakeFailed} (see
        L{HandshakeOutcome}).
    @ivar max_unread_bytes: see L{MAX_UNREAD_BYTES}.
    @ivar version: the protocol version of the link, once the hello came.
    """

    delimiter = b"\n"
    MAX_LENGTH = wire.MAX_LINE_BYTES
    max_unread_bytes = MAX_UNREAD_BYTES
    version: Optional[int] = None
    log = Logger()

    def __init__(
        self,
        handler: IPeerHandler,
        clock: IReactorTime,
        outbound: bool,
        handshake_timeout_s: float,
        entry_budget: Optional[EntryBudget] = None,
    ):
        self._handler = handler
        # Unlimited unless given (the factory gives the standard one).
        self._entries = entry_budget or EntryBudget(clock)
        self._clock = clock
        self._reading = ReadThrottle(self, clock)
        self.outbound = outbound
        self._handshake_timeout_s = handshake_timeout_s
        self._accepted = False
        self._closing = False
        self.remote_id: Optional[str] = None
        self.remote_name: Optional[str] = None
        self.remote_address: Optional[str] = None
        self._outcome = HandshakeOutcome()
        self._lost = LostCallbacks(self.describe)
        self._spoke = False
        self._peer_spoke = False
        self.bytes_in = 0
        self.bytes_out = 0
        #: Bytes written outside the producer since the transport paused it.
        self.unread_bytes = 0
        self.remote_error: Optional[str] = None
        self.remote_links = 0
        self._producer = None
        self._keepalive = KeepAlive(clock, lambda: self.send_frame(wire.ping()), self.close)
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

    def _warn(self, kind: str, format: str, routine: bool = False, **fields) -> None:
        """
        Log a warning (information if C{routine}) an unidentified peer can
        trigger at will: at most one of each C{kind} per interval, through
        the factory's L{LogLimiter}.
        """
        level = self.log.info if routine else self.log.warn
        limiter = getattr(self.factory, "log_limiter", None)
        if limiter is None:
            level(format, **fields)
        else:
            limiter.log(kind, level, format, **fields)

    # Framing and handshake

    def dataReceived(self, data: bytes) -> None:
        first = not self.bytes_in
        self.bytes_in += len(data)
        if first and refusals.plain_meets_tls(self.transport, data):
            self.close(refusals.PLAIN_MEETS_TLS)
            return
        self._keepalive.heard()
        super().dataReceived(data)

    def connectionMade(self) -> None:
        self._outcome.start_deadline(
            self._clock, self._handshake_timeout_s, self._handshake_timed_out
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
        self.send_frame(signed_hello(self._handler, self.transport))

    def _handshake_timed_out(self, reason: str) -> None:
        tls_link = tls.tls_connection(self.transport) is not None
        heard = self._spoke if tls_link and not self.outbound else self.bytes_in > 0
        self.close(reason + refusals.silence_hint(tls_link, self.outbound, heard))

    def lineReceived(self, line: bytes) -> None:
        if self._closing:
            return
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line.strip():
            return
        try:
            # An entry frame is parsed later, in a batch off the reactor thread.
            frame = (self._accepted and lazy_entry_frame(line)) or wire.parse_frame(line)
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
                self.send_frame(wire.pong())
        else:
            if frame_type == "entry":
                self.hold(self._entries.charge(frame.get("sync", False)))
            self._handler.rx_frame(self, frame)
        if confirms and self._accepted and not self._outcome.decided:
            self._outcome.decide(self)

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

    def hold(self, delay_s: float) -> None:
        """
        Stop reading from this link (only) for C{delay_s} seconds, or until
        a longer hold already running ends.  Nothing is dropped: the
        peer's data waits in its socket.
        """
        self._reading.hold(delay_s)

    @property
    def catching_up(self) -> bool:
        """
        Whether entries this peer marks C{sync} now answer something this
        node asked for (see L{expect_sync}).
        """
        return self._entries.catching_up

    @property
    def held(self) -> bool:
        """
        Whether this node stopped reading the link for a while (L{hold}):
        the peer's frames wait because of this node, not because it fell
        silent.
        """
        return self._reading.held

    def expect_sync(self, window_s: float = SYNC_WINDOW_S) -> None:
        """
        This node just asked the peer for entries (a summary page or a
        graft): see L{EntryBudget.expect_sync}.  (Called again with a
        short C{window_s} when the summary round ends, which closes the
        window soon.)
        """
        self._entries.expect_sync(window_s)

    def _rx_hello(self, frame: Dict[str, Any]) -> None:
        self.version, refusal = wire.link_version(frame)
        if refusal is not None:
            self.close(refusal)
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
        self._outcome.cancel_deadline()
        self._keepalive.start()
        self.log.info("link up with {peer}", peer=self.describe())
        if not self.outbound:
            self._outcome.decide(self)
        # An outbound link counts as made (for the dialer's back-off) only
        # once the listener shows it took our hello too: its first frame
        # after it, not an error.  A full listener refuses us only after
        # our hello; counting that as a success reset the dialer's back-off
        # and redialled it several times a second.

    def lineLengthExceeded(self, line: bytes) -> None:
        self.close(f"line longer than {self.MAX_LENGTH} bytes", misbehaved=True)

    def notify_on_lost(self, callback: Callable[[Failure], None]) -> None:
        """
        Call C{callback} with the reason when this link's connection is lost.
        """
        self._lost.add(callback)

    def connectionLost(self, reason: Failure = None) -> None:
        self._lost.run(reason, self.log)
        self._outcome.cancel_deadline()
        self._reading.cancel()
        self._keepalive.stop()
        if self._abort_call is not None and self._abort_call.active():
            self._abort_call.cancel()
        self._abort_call = None
        if self.factory is not None:
            self.factory.pending.discard(self)
        if self._accepted:
            self._accepted = False
            self.log.info("link down with {peer}", peer=self.describe())
            self._handler.link_down(self)
            if not self._outcome.decided:
                refused = f": {self.remote_error}" if self.remote_error else ""
                refused = f"{self.describe()} refused the link{refused}"
                self._outcome.decide(Failure(HandshakeFailed(refused, self.remote_id)))
        elif not self._outcome.decided:
            if reason is not None and reason.check(SSL.Error):
                self._warn(
                    "refused TLS",
                    "refused TLS link with {peer}: {reason}",
                    peer=self.describe(),
                    reason=tls_failure_reason(reason),
                )
            closed = f"link to {self.describe()} closed before hello"
            self._outcome.decide(Failure(HandshakeFailed(closed, self.remote_id)))

    @property
    def handshake_done(self) -> Deferred:
        return self._outcome.wait()

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
            self._keepalive.spoke()
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
        routine = isinstance(reason, Routine)
        if self._accepted:
            (self.log.info if routine else self.log.warn)(
                "closing link with {peer}: {reason}", peer=self.describe(), reason=printable(reason)
            )
        else:
            self._warn(
                "handshake refused",
                "closing link with {peer}: {reason}",
                routine,
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
        self._reading.stop()
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
        self._reading.stop()
        if self.transport is not None:
            self.transport.abortConnection()

    def leave(self) -> None:
        """
        Close the link politely with a C{bye} frame.
        """
        self.send_frame(wire.bye())
        self._lose_connection()
