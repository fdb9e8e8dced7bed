# -*- test-case-name: tests.unit.test_throttle -*-
"""
Stop reading one stream for a while: the pause-reading throttle of a peer
link and of a console, written once.

A protocol whose token bucket (L{p2pchat.ratelimit.TokenBucket.charge})
runs into debt asks its L{ReadThrottle} to L{hold <ReadThrottle.hold>}
for that long: the throttle pauses the protocol (C{pauseProducing}: a
L{twisted.protocols.basic.LineReceiver} then also stops delivering the
lines it already holds) and resumes it when the time is up.  Nothing is
dropped: the sender's data waits in its socket, and TCP back-pressure
slows the sender down.  Only this stream is paused; everyone else is
read as before.
"""

from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IPushProducer, IReactorTime


class ReadThrottle:
    """
    Pauses one producer (a protocol reading its transport) for a while.
    """

    def __init__(self, producer: IPushProducer, clock: IReactorTime):
        """
        @param producer: what to pause and resume; in practice the
            protocol itself (its C{pauseProducing} pauses its transport).
        @param clock: schedules the resumption.
        """
        self._producer = producer
        self._clock = clock
        self._call: Optional[IDelayedCall] = None
        self._stopped = False

    @property
    def held(self) -> bool:
        """
        Whether the producer is paused by this throttle now.
        """
        return self._call is not None

    def hold(self, delay_s: float) -> None:
        """
        Stop reading for C{delay_s} seconds, or until a longer hold already
        running ends (a shorter one is extended).  Nothing happens for
        C{delay_s <= 0}, or once L{stop}ped.
        """
        if delay_s <= 0 or self._stopped:
            return
        if self._call is not None:
            if self._call.getTime() >= self._clock.seconds() + delay_s:
                return
            self._call.cancel()
        else:
            self._producer.pauseProducing()
        self._call = self._clock.callLater(delay_s, self._resume)

    def _resume(self) -> None:
        self._call = None
        if not self._stopped:
            self._producer.resumeProducing()

    def stop(self) -> None:
        """
        The stream is closing: never pause or resume the producer again.
        A hold already running still counts as L{held} until its time is
        up (the peer's silence is still this node's doing).
        """
        self._stopped = True

    def cancel(self) -> None:
        """
        The stream is closed: stop, and drop the pending resumption.
        """
        self.stop()
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None
