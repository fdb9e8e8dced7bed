"""
A catch-up as people see it: the progress line, and when to show it.

L{CatchUpNews} reads the log's catch-up tracker (a snapshot callable, see
L{p2pchat.log.progress.CatchUpProgress.snapshot}) and, on each tick while
at least L{PROGRESS_MIN_MISSING} entries are known missing (fewer is the
ordinary lag of a busy network, seen in every anti-entropy round, not a
catch-up worth a line), tells the chat's listeners the progress line
(C{catching up: 45,000 of about 100,000 entries from 3 peers, ~12 s left})
at most every L{PROGRESS_EVERY_S}.  Messages committed to catch the node up
(not pushed live) reach listeners marked C{catch_up}
(L{p2pchat.chat.messages.Message}), so a face can count them instead of
printing each, when they were written more than L{CATCH_UP_AGE_S} ago or
arrive while a catch-up worth a progress line runs (a node joining just
after a burst of thousands of lines gets one summary line, not the
lines); a few fresh ones that reached this node by a summary round (a lazy
link, a gap) are still news, and are not marked.
"""

from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.interfaces import IReactorTime

from p2pchat.log.progress import describe

PROGRESS_EVERY_S = 3.0
CATCH_UP_AGE_S = 30.0
PROGRESS_MIN_MISSING = 50

IDLE = {
    "catching_up": False, "received": 0, "known_missing": 0, "sources": 0,
    "rate": 0.0, "eta_s": None,
}


class CatchUpNews:
    """
    See the module docstring.
    """

    def __init__(
        self,
        clock: IReactorTime,
        snapshot: Callable[[], Dict[str, object]],
        listeners: Callable[[], List[object]],
        level: Optional[Callable[[], Tuple[int, bool]]] = None,
    ):
        """
        @param level: gives C{(known_missing, catching_up)} cheaply (asked
            for every message a catch-up commits); by default read from
            C{snapshot}, which also computes the rate and the sources.
        """
        self._clock = clock
        self._snapshot = snapshot
        self._listeners = listeners
        self._level = level or self._level_from_snapshot
        self._last: Optional[float] = None
        self._big = False

    def _level_from_snapshot(self) -> Tuple[int, bool]:
        snapshot = self._snapshot()
        return int(snapshot["known_missing"]), bool(snapshot["catching_up"])

    def snapshot(self) -> Dict[str, object]:
        """
        @return: C{catching_up}, C{received}, C{known_missing}, C{sources},
            C{rate} (entries/s) and C{eta_s} (seconds or C{None}).
        """
        return self._snapshot()

    @property
    def catching_up(self) -> bool:
        """
        Whether a link's first summary round runs or anything is known
        missing (what C{READY=1} waits for).
        """
        return bool(self._snapshot()["catching_up"])

    @property
    def showing(self) -> bool:
        """
        Whether a catch-up worth a progress line is under way (at least
        L{PROGRESS_MIN_MISSING} entries known missing): faces hold their
        summary lines until it ends.
        """
        return self._level()[0] >= PROGRESS_MIN_MISSING

    @property
    def big(self) -> bool:
        """
        Whether a catch-up that was once worth a progress line is still
        under way (its tail, fewer than L{PROGRESS_MIN_MISSING} entries
        known missing, included): what it brings is counted, not printed.
        """
        known_missing, catching_up = self._level()
        if known_missing >= PROGRESS_MIN_MISSING:
            self._big = True
        elif not catching_up:
            self._big = False
        return self._big

    def line(self) -> Optional[str]:
        """
        @return: the progress line, or C{None} when fewer than
            L{PROGRESS_MIN_MISSING} entries are known missing.
        """
        if self._level()[0] < PROGRESS_MIN_MISSING:
            return None
        return describe(self._snapshot())

    def tick(self) -> None:
        """
        Tell the listeners the progress line if it is due.
        """
        now = self._clock.seconds()
        if self._last is not None and now - self._last < PROGRESS_EVERY_S:
            return
        line = self.line()
        if line is None:
            self._last = None
            return
        self._last = now
        for listener in list(self._listeners()):
            progress = getattr(listener, "progress", None)
            if progress is not None:
                progress(line)
