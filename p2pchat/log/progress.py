"""
How far a catch-up is: entries known to exist but not held, the rate
they arrive at, and when it should end (sans-IO: takes a clock).

What a peer holds comes in its summary pages (the version vector it sends
when a link comes up, and on every anti-entropy round): for each author,
its contiguous seq C{c} or C{[c, h]}.  L{CatchUpProgress} keeps, per
author whose highest claimed seq is above the highest seq this node holds,
that claim and the link that made it, and counts what separates them:
C{known_missing}, "about" because holes are not counted and an author is
counted from this node's highest seq.  Committed entries bring it down.

Catching up means a link's first summary round has not ended yet, or
something is known missing.  A claim is a peer's word, not proof: it dies
with its link, and L{CLAIM_GRACE_S} after the round with that link ends
(by then the link has streamed everything it holds that this node
lacked), so a peer that claims entries it does not have delays the end of
catch-up (and C{READY=1}) by at most that long after each round, never
for ever.  At most L{MAX_AUTHORS} authors are tracked (a liar inventing
authors costs bounded memory; beyond it the estimate is low).
"""

from collections import deque
from typing import Callable, Deque, Dict, Optional, Tuple

from twisted.internet.interfaces import IReactorTime

MAX_AUTHORS = 50_000
CLAIM_GRACE_S = 10.0
RATE_WINDOW_S = 5.0


def claimed_top(value) -> int:
    """
    @param value: one author's summary value: C{c} or C{[c, h]}.
    @return: the highest seq that value says the peer holds.
    """
    return value[1] if isinstance(value, list) else value


class CatchUpProgress:
    """
    See the module docstring.

    @ivar received: entries of tracked authors committed since this
        catch-up began (reset when one begins).
    """

    def __init__(self, clock: IReactorTime, held: Callable[[str], int]):
        """
        @param held: the highest seq of an author this node holds (0 if
            none).
        """
        self._clock = clock
        self._held = held
        # author -> [claimed top, held top, the links that claimed that top]
        self._gaps: Dict[str, list] = {}
        self._missing = 0
        self._first_rounds: set = set()
        self._expiry: Dict[object, object] = {}
        self._arrivals: Deque[Tuple[float, int]] = deque()
        # The sum of the counts in _arrivals (rate() is asked often).
        self._arrived = 0
        self._was_catching_up = False
        self.received = 0

    # What happens

    def link_up(self, link) -> None:
        self._started()
        self._first_rounds.add(link)

    def link_down(self, link) -> None:
        self._first_rounds.discard(link)
        call = self._expiry.pop(link, None)
        if call is not None and call.active():
            call.cancel()
        self._drop_claims(link)

    def round_done(self, link) -> None:
        """
        This node's summary round with C{link} ended: the link streamed
        what it holds that this node lacked.  Its unfulfilled claims
        expire L{CLAIM_GRACE_S} later (the last entries may still be
        being verified).
        """
        self._first_rounds.discard(link)
        call = self._expiry.get(link)
        if call is not None and call.active():
            call.reset(CLAIM_GRACE_S)
        else:
            self._expiry[link] = self._clock.callLater(
                CLAIM_GRACE_S, self._expire, link
            )

    def _expire(self, link) -> None:
        self._expiry.pop(link, None)
        self._drop_claims(link)

    def claimed(self, link, vv: dict) -> None:
        """
        A summary page of C{link}: author -> C{c} or C{[c, h]}.
        """
        for author, value in vv.items():
            top = claimed_top(value)
            gap = self._gaps.get(author)
            if gap is not None:
                if top > gap[0]:
                    self._missing += top - gap[0]
                    gap[0], gap[2] = top, [link]
                elif top == gap[0] and link not in gap[2]:
                    gap[2].append(link)
                continue
            if len(self._gaps) >= MAX_AUTHORS:
                continue
            held = self._held(author)
            if top > held:
                self._started()
                self._gaps[author] = [top, held, [link]]
                self._missing += top - held

    def committed(self, author: str, seq: int) -> None:
        """
        An entry of C{author} with C{seq} was committed.
        """
        gap = self._gaps.get(author)
        if gap is None or seq <= gap[1]:
            return
        gained = min(seq, gap[0]) - gap[1]
        self._missing -= gained
        self.received += 1
        now = self._clock.seconds()
        if self._arrivals and self._arrivals[-1][0] == now:
            self._arrivals[-1] = (now, self._arrivals[-1][1] + 1)
        else:
            self._arrivals.append((now, 1))
        self._arrived += 1
        gap[1] = seq
        if seq >= gap[0]:
            del self._gaps[author]

    def _drop_claims(self, link) -> None:
        # A claim made by another link too stays (a link goes down while
        # another still streams the same entries).
        for author in [a for a, gap in self._gaps.items() if link in gap[2]]:
            claimers = self._gaps[author][2]
            claimers.remove(link)
            if not claimers:
                top, held, _ = self._gaps.pop(author)
                self._missing -= top - held

    def _started(self) -> None:
        if not self.catching_up:
            self.received = 0
            self._arrivals.clear()
            self._arrived = 0

    # Answers

    @property
    def known_missing(self) -> int:
        """
        Entries known to exist (claimed by a linked peer) but not held.
        """
        return self._missing

    @property
    def catching_up(self) -> bool:
        """
        Whether a link's first summary round is running or something is
        known missing.
        """
        return bool(self._first_rounds) or self._missing > 0

    @property
    def sources(self) -> int:
        """
        How many links the catch-up is coming from (links whose first
        round runs, or whose claims are not all held).
        """
        links = set(self._first_rounds)
        for gap in self._gaps.values():
            links.update(gap[2])
        return len(links)

    def rate(self) -> float:
        """
        @return: entries a second committed over the last
            L{RATE_WINDOW_S} (0.0 before two arrivals).
        """
        now = self._clock.seconds()
        while self._arrivals and self._arrivals[0][0] < now - RATE_WINDOW_S:
            self._arrived -= self._arrivals.popleft()[1]
        if not self._arrivals:
            return 0.0
        span = max(now - self._arrivals[0][0], 1.0)
        return self._arrived / span

    def eta(self) -> Optional[float]:
        """
        @return: seconds left at the current rate, or C{None} if unknown.
        """
        rate = self.rate()
        if not self._missing or rate <= 0:
            return None
        return self._missing / rate

    def snapshot(self) -> Dict[str, object]:
        """
        @return: C{catching_up}, C{received}, C{known_missing}, C{sources},
            C{rate} and C{eta_s} (or C{None}).
        """
        eta = self.eta()
        return {
            "catching_up": self.catching_up,
            "received": self.received,
            "known_missing": self._missing,
            "sources": self.sources,
            "rate": round(self.rate(), 1),
            "eta_s": None if eta is None else round(eta, 1),
        }


def describe(snapshot: Dict[str, object]) -> str:
    """
    @return: the progress line: C{catching up: 45,000 of about 100,000
        entries from 3 peers, ~12 s left}.
    """
    received = snapshot["received"]
    total = received + snapshot["known_missing"]
    sources = snapshot["sources"]
    text = f"catching up: {received:,} of about {total:,} entries"
    if sources:
        text += f" from {sources} peer{'' if sources == 1 else 's'}"
    eta = snapshot["eta_s"]
    if eta is not None:
        text += f", ~{max(1, round(eta)):,} s left"
    return text
