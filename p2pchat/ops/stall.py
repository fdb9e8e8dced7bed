"""
The longest reactor turn: how long the reactor thread was kept from
running its timers.

A L{StallMonitor} keeps one timer pending on an injected clock, every
C{interval_s} seconds.  When the timer fires it compares the clock with
the moment it was due: the difference (its I{lateness}) is at most the
longest stretch for which the reactor did something else -- a store call,
a big frame, a slow console command -- plus the reactor's own scheduling
slack.  The largest lateness seen is the node's longest reactor turn,
shown in C{/status} as C{longest_reactor_turn_ms} and exported as the
C{p2pchat_longest_reactor_turn_seconds} gauge.

The issue's invariant is "no reactor stall over 250 ms"; with the default
interval of 50 ms a stall of that size is seen within one tick of its end.
Costs: one pending timer and a few floats, whatever the load.  The
reactor's clock is the wall clock, so a forward step of the system clock
reads as a stall (a backward step reads as none).
"""

from typing import Optional

from twisted.internet.interfaces import IDelayedCall, IReactorTime

STALL_INTERVAL_S = 0.05


class StallMonitor:
    """
    Measures the lateness of a repeating timer on C{clock}.

    @ivar longest_s: the largest lateness seen since L{start}, seconds.
    @ivar last_s: the lateness of the most recent tick, seconds.
    @ivar ticks: how many ticks have run.
    """

    def __init__(self, clock: IReactorTime, interval_s: float = STALL_INTERVAL_S):
        """
        @param clock: the reactor (or a L{twisted.internet.task.Clock}).
        @param interval_s: how often to look, in seconds.
        """
        self._clock = clock
        self.interval_s = interval_s
        self.longest_s = 0.0
        self.last_s = 0.0
        self.ticks = 0
        self._due = 0.0
        self._call: Optional[IDelayedCall] = None

    @property
    def running(self) -> bool:
        """
        Whether a tick is pending.
        """
        return self._call is not None

    def start(self) -> None:
        """
        Start looking (again); does not forget the longest turn seen.
        """
        self.stop()
        self._schedule()

    def _schedule(self) -> None:
        self._due = self._clock.seconds() + self.interval_s
        self._call = self._clock.callLater(self.interval_s, self._tick)

    def _tick(self) -> None:
        self._call = None
        self.ticks += 1
        self.last_s = max(0.0, self._clock.seconds() - self._due)
        self.longest_s = max(self.longest_s, self.last_s)
        self._schedule()

    def stop(self) -> None:
        """
        Stop looking (harmless when not running).
        """
        if self._call is not None:
            if self._call.active():
                self._call.cancel()
            self._call = None
