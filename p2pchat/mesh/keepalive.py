# -*- test-case-name: tests.unit.test_peer -*-
"""
A link's keep-alive: every L{KEEPALIVE_INTERVAL_S}, close the link if the
peer has been silent for L{IDLE_TIMEOUT_S} (a dead or partitioned peer
whose TCP connection lingers), else send a C{ping} if this node has been
silent, so the peer's own check sees it.
"""

from typing import Callable, Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime

KEEPALIVE_INTERVAL_S = 5.0
IDLE_TIMEOUT_S = 15.0


class KeepAlive:
    """
    The keep-alive of one link.
    """

    def __init__(
        self,
        clock: IReactorTime,
        ping: Callable[[], None],
        close: Callable[[str], None],
    ):
        """
        @param ping: sends a C{ping} on the link.
        @param close: closes the link, with a reason.
        """
        self._clock = clock
        self._ping = ping
        self._close = close
        self._last_rx = self._last_tx = clock.seconds()
        self._call: Optional[IDelayedCall] = None

    def heard(self) -> None:
        """
        Something arrived from the peer.
        """
        self._last_rx = self._clock.seconds()

    def spoke(self) -> None:
        """
        Something was sent to the peer.
        """
        self._last_tx = self._clock.seconds()

    def start(self) -> None:
        """
        Start checking (the link was accepted).
        """
        self._call = self._clock.callLater(KEEPALIVE_INTERVAL_S, self._check)

    def stop(self) -> None:
        """
        Stop checking (the link closed).
        """
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _check(self) -> None:
        self._call = None
        now = self._clock.seconds()
        if now - self._last_rx >= IDLE_TIMEOUT_S:
            self._close(f"silent for {now - self._last_rx:.0f} s")
            return
        if now - self._last_tx >= KEEPALIVE_INTERVAL_S:
            self._ping()
        self._call = self._clock.callLater(KEEPALIVE_INTERVAL_S, self._check)
