"""
Admission of new feeds: what a link may cost this node in new authors.

Node ids are free, so a peer can invent any number of authors and post one
entry under each; every new author costs a row in the store's feed table,
a version-vector entry that every summary carries, and a signature check.
Two defences, applied by L{FeedAdmission} to every entry received from a
peer (never to this node's own posts):

  - B{A per-link budget of new feeds.}  An entry whose author this node
    holds nothing of (and did not admit lately) takes a token from a
    bucket of the link it came on: L{NEW_FEEDS_PER_S} (burst
    L{NEW_FEED_BURST}) for what the peer pushes on its own, and the larger
    L{CATCH_UP_NEW_FEEDS_PER_S} (burst L{CATCH_UP_NEW_FEED_BURST}) for
    catch-up this node asked for (a summary round or graft of its own in
    flight).  With no token left the entry is I{dropped} before its
    signature is checked, with one rate-limited log line; the link keeps
    being read, so chat, gossip and keep-alives on it are never stuck
    behind a flood (an earlier version paused the whole link instead, and
    an honest relay of someone else's flood then looked dead to its
    neighbours).  Nothing honest is lost: a dropped feed is still missing
    from this node's version vector, so the next summary exchange brings
    it, within the catch-up budget.

  - B{On a TLS network, only certified authors.}  When the node has the
    network's CA (C{attestations} is not C{None}), an entry is accepted
    only if its author's C{cert} entry (see L{p2pchat.trust.attest}) has been
    verified against the CA.  A C{cert} entry of an uncertified author is
    itself checked (after its signature) and, if it holds, admits the
    author at once (the name is learned then); a C{cert} entry that does
    not hold is refused.  Any other entry of an uncertified author is
    I{not stored}: it is dropped with one rate-limited log line, and comes
    again through anti-entropy once the author's certificate is known (a
    feed's cert entry need not be its seq 1; the seqs before it are then
    re-sent by the next summary exchange, because the node's contiguous
    seq for that author stays below them).  Outsiders without a
    certificate from the network's CA cannot inject authors at all.

Memory: two token buckets per link (weakly keyed: they go with the link),
and at most L{MAX_RECENT_AUTHORS} recently admitted authors (forgotten all
at once when full; forgetting only means the next entry of such an author
is charged again if it is still not stored).  CPU: O(1) per entry, plus
one certificate check per C{cert} entry of an uncertified author, itself
charged to the budget first.
"""

import weakref
from typing import Callable, Dict, Optional

from twisted.internet.interfaces import IReactorTime

from p2pchat.log.entry import Entry
from p2pchat.ratelimit import TokenBucket
from p2pchat.trust.attest import Attestations

NEW_FEEDS_PER_S = 100
NEW_FEED_BURST = 1_000
CATCH_UP_NEW_FEEDS_PER_S = 1_000
CATCH_UP_NEW_FEED_BURST = 10_000
MAX_RECENT_AUTHORS = 65_536


class FeedAdmission:
    """
    The new-feed budget of every link and the TLS certificate gate.

    @ivar dropped: entries of new authors dropped over a link's budget.
    @ivar refused: entries refused by the certificate gate.
    """

    def __init__(
        self,
        clock: IReactorTime,
        holds: Callable[[str], bool],
        attestations: Callable[[], Optional[Attestations]] = lambda: None,
        rate_per_s: float = NEW_FEEDS_PER_S,
        burst: float = NEW_FEED_BURST,
    ):
        """
        @param clock: for the token buckets.
        @param holds: tells whether this node holds (or has queued) any
            entry of an author.
        @param attestations: returns the network's verified names on a
            TLS network, C{None} on an open one (asked at each entry).
        """
        self._clock = clock
        self._holds = holds
        self._attestations = attestations
        self.rate_per_s = rate_per_s
        self._burst = burst
        self._buckets: Dict[bool, "weakref.WeakKeyDictionary[object, TokenBucket]"] = {
            False: weakref.WeakKeyDictionary(),
            True: weakref.WeakKeyDictionary(),
        }
        self._recent: Dict[str, None] = {}
        self.dropped = 0
        self.refused = 0

    def admit(self, author: str, link, solicited: bool = False) -> bool:
        """
        Take a token for a received entry of C{author} on C{link}, before
        its signature is checked.

        @param solicited: the entry is catch-up this node asked C{link}
            for (charged to the larger catch-up budget).
        @return: whether to go on with the entry: C{True} when C{author}
            is not new or the link's budget has a token; C{False} to drop
            it (counted in L{dropped}).
        """
        if author in self._recent or self._is_certified_holder(author):
            return True
        buckets = self._buckets[solicited]
        bucket = buckets.get(link)
        if bucket is None:
            if solicited:
                rate, burst = CATCH_UP_NEW_FEEDS_PER_S, CATCH_UP_NEW_FEED_BURST
            else:
                rate, burst = self.rate_per_s, self._burst
            bucket = buckets[link] = TokenBucket(rate, burst, self._clock)
        if bucket.take(1):
            # Admitted now, not when its signature has been checked (in a
            # thread, later): the author's next entries, read meanwhile,
            # are not new feeds.  A forged one closes its link anyway.
            self._remember(author)
            return True
        self.dropped += 1
        return False

    def _remember(self, author: str) -> None:
        if len(self._recent) >= MAX_RECENT_AUTHORS:
            self._recent.clear()
        self._recent[author] = None

    def _is_certified_holder(self, author: str) -> bool:
        attestations = self._attestations()
        if attestations is not None and author not in attestations.names:
            return False
        return self._holds(author)

    def refusal(self, entry: Entry) -> Optional[str]:
        """
        The certificate gate, for an entry whose signature holds.

        @return: why C{entry} is not accepted (it is then not stored), or
            C{None} if it is; an accepted author is remembered as admitted.
        """
        attestations = self._attestations()
        if attestations is not None and entry.author not in attestations.names:
            if entry.kind != "cert":
                self.refused += 1
                return "its author has no verified certificate from this network's CA yet"
            reason = attestations.learn(entry.author, entry.body)
            if reason is not None:
                self.refused += 1
                return f"its certificate does not hold: {reason}"
        self._remember(entry.author)
        return None
