"""
When a node tells systemd it is ready, and what it says meanwhile
(sans-IO: takes a clock and a way to reach the notifier).

C{READY=1} means the node is of use: its store is open, its listeners are
up and, when it was given peers (C{--peer}), its initial catch-up is done:
it has a link, no link's first summary round is running and nothing is
known missing (L{p2pchat.log.progress}).  A node with no peer to wait for
is ready at once, and one whose catch-up does not end (no peer answers, a
peer keeps claiming what it never sends) is ready after C{timeout_s}
anyway (C{--ready-timeout}), so a unit never hangs in "activating".

C{STATUS=} says how far it is: every L{STATUS_INTERVAL_S} until ready (the
progress line, or that it waits for a peer), and afterwards at most that
often when links or messages change.
"""

from typing import Callable, Optional

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger

STATUS_INTERVAL_S = 1.0


class Readiness:
    """
    See the module docstring.

    @ivar ready: whether C{READY=1} was sent (or would have been, with no
        notifier).
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        notifier: Callable[[], Optional[object]],
        status: Callable[[], str],
        caught_up: Callable[[], bool],
        timeout_s: float,
    ):
        """
        @param notifier: the L{p2pchat.ops.sdnotify.Notifier}, or C{None}
            outside systemd.
        @param status: the status line (with the progress while catching
            up).
        @param caught_up: whether the initial catch-up is done (linked,
            nothing running or known missing).
        @param timeout_s: the most seconds READY waits for it.
        """
        self._clock = clock
        self._notifier = notifier
        self._status = status
        self._caught_up = caught_up
        self._timeout_s = timeout_s
        self._deadline = None
        self._status_call = None
        self.ready = False

    def start(self, wait: bool) -> None:
        """
        The node runs: ready now, or (C{wait}: it has peers to catch up
        from) once caught up or after C{timeout_s}.
        """
        if not wait:
            self._become_ready()
            return
        self._deadline = self._clock.callLater(self._timeout_s, self._timed_out)
        self._send_status()

    def changed(self) -> None:
        """
        Links or messages changed: maybe ready now; a status line soon.
        """
        if not self.ready and self._caught_up():
            self._become_ready()
        elif self._status_call is None and self._notifier() is not None:
            self._status_call = self._clock.callLater(STATUS_INTERVAL_S, self._send_status)

    def _send_status(self) -> None:
        self._status_call = None
        if not self.ready and self._caught_up():
            self._become_ready()
            return
        notifier = self._notifier()
        if notifier is not None:
            notifier.status(self._status())
        if not self.ready:
            # Until ready, every interval: the catch-up may end without a
            # change (a claim expires) and the progress moves.
            self._status_call = self._clock.callLater(STATUS_INTERVAL_S, self._send_status)

    def _timed_out(self) -> None:
        self._deadline = None
        self.log.warn(
            "ready after {timeout} s (--ready-timeout) without finishing the initial "
            "catch-up: {status}",
            timeout=self._timeout_s, status=self._status(),
        )
        self._become_ready()

    def _become_ready(self) -> None:
        if self.ready:
            return
        self.ready = True
        self._cancel("_deadline")
        self._cancel("_status_call")
        notifier = self._notifier()
        if notifier is not None:
            notifier.ready(self._status())

    def _cancel(self, name: str) -> None:
        call = getattr(self, name)
        if call is not None and call.active():
            call.cancel()
        setattr(self, name, None)

    def stop(self) -> None:
        """
        The node stops: nothing more is scheduled.
        """
        self._cancel("_deadline")
        self._cancel("_status_call")
