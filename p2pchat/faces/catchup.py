# -*- test-case-name: tests.unit.test_screen,tests.unit.test_catchup_console -*-
"""
Telling catch-up from chat on the terminal screen and the line console (no
I/O; takes a clock).

After a restart a node receives every message posted meanwhile, thousands
at once; shown one by one they would scroll the conversation away.
L{CatchUpGate} passes messages through as they come while they come at a
human pace, and when more than L{BURST_MESSAGES} arrive within
L{BURST_WINDOW_S} it counts them instead, until none has come for
L{QUIET_S}; then it hands over one summary line per room
(C{*** 5,000 new messages — /history to read}; C{... in #rust ...} for a
message with a C{room}).  The user's own messages are always shown.

With C{live_always} (the line console) only messages the chat marks
C{catch_up} (they arrived to catch this node up) are sorted so; live
messages are always shown at once.  While C{busy()} says the catch-up goes
on, the summary waits for it to end (it ends: see L{p2pchat.log.progress}).
"""

from collections import deque
from typing import Callable, Deque, Dict, List, Optional

from twisted.internet.interfaces import IReactorTime

BURST_MESSAGES = 20
BURST_WINDOW_S = 1.0
QUIET_S = 1.0


def summary(count: int, room: Optional[str] = None) -> str:
    """
    @return: the line that stands for C{count} messages (of C{room}, if
        known) not shown.
    """
    noun = "message" if count == 1 else "messages"
    where = f" in {room}" if room else ""
    return f"*** {count:,} new {noun}{where} \N{EM DASH} /history to read"


class CatchUpGate:
    """
    Decides, per reactor turn, which arriving messages are shown and which
    are only counted.

    @ivar counting: how many messages the current burst has counted, or
        C{None} outside a burst (the screen's status bar shows it).
    """

    def __init__(
        self,
        clock: IReactorTime,
        show: Callable[[object], None],
        summarise: Callable[[str], None],
        burst: int = BURST_MESSAGES,
        window_s: float = BURST_WINDOW_S,
        quiet_s: float = QUIET_S,
        busy: Callable[[], bool] = lambda: False,
        live_always: bool = False,
    ):
        """
        @param show: called with each message to show.
        @param summarise: called with the summary line when a burst ends.
        @param busy: whether a catch-up is still going on.
        @param live_always: show messages not marked C{catch_up} at once.
        """
        self._clock = clock
        self._show = show
        self._summarise = summarise
        self._burst = burst
        self._window_s = window_s
        self._quiet_s = quiet_s
        self._busy = busy
        self._live_always = live_always
        self._pending: List[object] = []
        self._counts: Dict[Optional[str], int] = {}
        self._shown: Deque[float] = deque()
        self._turn = None
        self._quiet = None
        self.counting: Optional[int] = None

    def arrived(self, message: object, own: bool = False) -> None:
        """
        A message arrived; C{own} ones (typed here) are shown at once.
        """
        if own:
            self._show(message)
            return
        self._pending.append(message)
        if self._turn is None:
            self._turn = self._clock.callLater(0, self._sort)

    def _sort(self) -> None:
        self._turn = None
        pending, self._pending = self._pending, []
        if self._live_always:
            for message in pending:
                if not getattr(message, "catch_up", False):
                    self._show(message)
            pending = [m for m in pending if getattr(m, "catch_up", False)]
        now = self._clock.seconds()
        while self._shown and self._shown[0] <= now - self._window_s:
            self._shown.popleft()
        if self.counting is None and len(self._shown) + len(pending) <= self._burst:
            for message in pending:
                self._shown.append(now)
                self._show(message)
            return
        self.counting = (self.counting or 0) + len(pending)
        for message in pending:
            room = getattr(message, "room", None)
            self._counts[room] = self._counts.get(room, 0) + 1
        if self._quiet is not None and self._quiet.active():
            self._quiet.reset(self._quiet_s)
        else:
            self._quiet = self._clock.callLater(self._quiet_s, self._settled)

    def _settled(self) -> None:
        if self._busy():
            self._quiet = self._clock.callLater(self._quiet_s, self._settled)
            return
        self._quiet = None
        counts, self._counts, self.counting = self._counts, {}, None
        self._shown.clear()
        for room, count in counts.items():
            self._summarise(summary(count, room))

    def stop(self) -> None:
        """
        Cancel what is scheduled; messages not sorted yet are dropped.
        """
        for call in (self._turn, self._quiet):
            if call is not None and call.active():
                call.cancel()
        self._turn = self._quiet = None
        self._pending = []
        self._counts = {}
