# -*- test-case-name: tests.unit.test_safe -*-
"""
Making peer-supplied text safe to show, and keeping floodable log lines
from flooding.

Anything a peer sends (names, addresses, error reasons, message text) may
hold line breaks, terminal escape sequences or other control characters.
L{printable} writes them as escapes before the text reaches a log line or
a terminal.  L{LogLimiter} lets one kind of log line through at most once
per interval and counts what it held back, so a peer that can trigger a
warning at will cannot fill the disk with it.
"""

from typing import Callable, Dict, Tuple

from twisted.internet.interfaces import IReactorTime

DEFAULT_LIMIT = 200


def printable(text: object, limit: int = 0) -> str:
    """
    @param text: anything; a non-string is shown by its C{str}.
    @param limit: if positive, cut the result to this many characters and
        mark the cut with C{...}.
    @return: C{text} with every non-printable character (line breaks,
        terminal escape sequences, bidirectional overrides, other control
        characters) written as an escape such as C{\\x1b}, so it can
        neither fake a line nor drive someone's terminal.
    """
    if not isinstance(text, str):
        text = str(text)
    if limit > 0 and len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class LogLimiter:
    """
    Lets each kind of event through at most once per C{interval_s}.

    Usage::

        suppressed = limiter.allow("refused")
        if suppressed is not None:
            log.warn("refused ... ({suppressed} more not logged)", suppressed=suppressed)

    Memory: one entry per kind, and kinds are chosen by the caller (a
    fixed set of strings, never a peer-supplied value).
    """

    def __init__(self, clock: IReactorTime, interval_s: float = 10.0):
        self._clock = clock
        self._interval_s = interval_s
        self._kinds: Dict[str, Tuple[float, int]] = {}

    def allow(self, kind: str):
        """
        @return: C{None} to hold this event back; otherwise the number of
            events of this kind held back since the last one let through.
        """
        now = self._clock.seconds()
        last, held = self._kinds.get(kind, (float("-inf"), 0))
        if now - last < self._interval_s:
            self._kinds[kind] = (last, held + 1)
            return None
        self._kinds[kind] = (now, 0)
        return held

    def log(self, kind: str, emit: Callable[..., None], format: str, **fields) -> None:
        """
        Call C{emit(format + suffix, **fields)} if L{allow} lets C{kind}
        through; the suffix says how many were held back, if any.
        """
        held = self.allow(kind)
        if held is None:
            return
        if held:
            format += " ({held} similar line{plural} not logged)"
            fields["held"], fields["plural"] = held, "" if held == 1 else "s"
        emit(format, **fields)
