"""
The feed: every entry this node takes in or writes on its way into the
store, and the Lamport clock they advance.

L{Feed} is a plain object with an injected clock, store, verifier and
listeners.  Entries arrive from links (L{Feed.rx_entry}: parse, drop known
ids, the new-feed budget, signature check, certificate admission) or from a
local author (L{Feed.author}); both are queued and committed in batches
(L{Feed.flush}).  Only committed entries are reported upward, through
L{IFeedListener}; the feed knows nothing about chat or consoles.  A I{source}
is the link an entry came on (anything with C{close}, C{describe} and
C{catching_up}), or C{None} for a local entry.
"""

import time
from typing import Callable, Dict, List, Optional, Tuple

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from zope.interface import Interface

from p2pchat.log.admission import FeedAdmission
from p2pchat.log.entry import (
    MAX_INTEGER,
    Entry,
    InvalidEntry,
    UnverifiedEntry,
    create_entry,
    parse_entry,
)
from p2pchat.log.identity import Identity, short_id
from p2pchat.log.store import Store, StoreError
from p2pchat.log.verifier import InlineVerifier
from p2pchat.mesh.raw_entry import RawEntry
from p2pchat.ops.metrics import Metrics
from p2pchat.safe import LogLimiter, printable
from p2pchat.trust.attest import Attestations

MAX_BATCH_ENTRIES = 1000
MAX_LAMPORT_LEAD = 1_000_000


class IFeedListener(Interface):
    """
    What a L{Feed} reports upward, in commit order.
    """

    def committed(entry: Entry, source: object, live: bool) -> None:
        """
        C{entry} is now stored (it came on C{source}, C{None} if local;
        C{live} is C{False} for catch-up).
        """

    def duplicate(source: object, live: bool) -> None:
        """
        C{source} sent an entry this node already holds or has queued.
        """

    def gap(source: object) -> None:
        """
        C{source} sent an entry beyond its author's contiguous run here:
        it holds entries this node lacks.
        """

    def failed(count: int, error: StoreError) -> None:
        """
        A batch of C{count} entries could not be committed; none of it is
        reported as committed.
        """


class Feed:
    """
    Ingest, batching and the Lamport clock of one node's copy of the log.

    @ivar forks: forked entries detected (and not stored).
    @ivar entries_received: entry frames received from peers.
    @ivar duplicates_received: of those, entries already held.
    @ivar longest_store_call_s: the longest one store call took.
    @ivar admission: the new-feed budget and certificate admission.
    @ivar verifier: checks signatures and calls back in arrival order.
    @ivar on_change: called after a flush that committed new entries.
    """

    log = Logger()

    def __init__(
        self,
        store: Store,
        clock: IReactorTime,
        wall_clock: Callable[[], float] = time.time,
        metrics: Optional[Metrics] = None,
        attestations: Optional[Attestations] = None,
        verifier: Callable[[Callable], object] = InlineVerifier,
    ):
        self.store = store
        self._clock = clock
        self._wall_clock = wall_clock
        self.metrics = metrics or Metrics()
        self.attestations = attestations
        self.verifier = verifier(self._verified)
        self.verifier.admit = self._admit
        self.listeners: List[object] = []
        self.forks = 0
        self.entries_received = 0
        self.duplicates_received = 0
        self.longest_store_call_s = 0.0
        self.stopping = False
        self.on_change: Callable[[], None] = lambda: None
        self._batch: List[Entry] = []
        self._batch_ids = set()
        self._batch_sources: Dict[str, tuple] = {}
        self._flush_call = None
        # Local authors' (seq, head id), loaded when they first write.
        self._heads: Dict[str, Tuple[int, Optional[str]]] = {}
        if attestations is not None:
            for entry in store.attestations():
                attestations.learn(entry.author, entry.body)
        self.admission = FeedAdmission(
            clock, lambda author: store.max_seq(author) > 0, lambda: self.attestations
        )
        self._admission_log = LogLimiter(clock)
        self.lamport = store.max_lamport(at_most=self._plausible_lamport())

    def subscribe(self, listener) -> None:
        """
        Report to C{listener} (an L{IFeedListener}) after those already
        subscribed.
        """
        self.listeners.append(listener)

    # Entries in

    def rx_entry(self, wire_entry, source, live: bool = True) -> bool:
        """
        Check an entry received from C{source} (its wire object, or a
        L{RawEntry} whose line C{self.verifier} decodes in a batch): parse
        it, L{_admit} it, and have C{self.verifier} check its signature and
        call L{_verified}.

        @return: whether it was valid and new (or taken for verification).
        """
        if self.stopping:
            return False
        if source is not None:
            self.entries_received += 1
        if isinstance(wire_entry, RawEntry):
            return self.verifier.submit_raw(wire_entry, source, live)
        try:
            candidate = parse_entry(wire_entry)
        except InvalidEntry as e:
            return self._verified(None, None, e, source, live)
        if not self._admit(candidate, source, live):
            return False
        return self.verifier.submit(candidate, source, live)

    def _admit(self, candidate: UnverifiedEntry, source, live: bool) -> bool:
        """
        Whether a parsed entry is worth a signature check.  An entry whose
        id is held, queued or being verified is dropped unverified (the id
        hashes the whole signed entry), and so is a new author's past its
        link's new-feed budget.
        """
        if self._known(candidate):
            if source is not None:
                self.duplicates_received += 1
                for listener in list(self.listeners):
                    listener.duplicate(source, live)
            return False
        return source is None or self._admit_feed(source, candidate.author, live)

    def _verified(self, candidate, entry: Optional[Entry], error, source, live: bool) -> bool:
        """
        Queue a verified C{entry} for storing, or close the link of one
        whose L{InvalidEntry} is C{error}.  Called in arrival order.
        """
        if self.stopping:
            return False
        if error is not None:
            self.metrics.entry_rejected("invalid")
            if source is not None:
                source.close(f"rejected entry: {error}", misbehaved=True)
            else:
                self.log.warn("rejected entry: {reason}", reason=str(error))
            return False
        refusal = None if source is None else self.admission.refusal(entry)
        if refusal is not None:
            self.metrics.entry_rejected("uncertified")
            self._admission_log.log(
                "uncertified", self.log.info,
                "not storing entry {id} of {author} from {peer}: {reason}; it comes "
                "again once the certificate is known",
                id=entry.id[:12], author=short_id(entry.author),
                peer=printable(source.describe()), reason=refusal,
            )
            return False
        self._queue(entry, source, live)
        return True

    def _admit_feed(self, source, author: str, live: bool) -> bool:
        """
        A new author costs its link a token before it costs us CPU; with
        none left the entry is dropped (it comes again through
        anti-entropy), and the link keeps being read.
        """
        solicited = not live and source.catching_up
        if self.admission.admit(author, source, solicited):
            return True
        self.metrics.entry_rejected("new_feed_budget")
        self._admission_log.log(
            "new-feeds", self.log.info,
            "dropping entries of new authors from {peer}: more than its budget "
            "({rate}/s); they come again through anti-entropy",
            peer=printable(source.describe()), rate=self.admission.rate_per_s,
        )
        return False

    def _known(self, candidate: UnverifiedEntry) -> bool:
        """
        @return: whether an entry with the id of C{candidate} is stored
            or queued.  One above its author's highest stored seq is not
            stored, which the store answers without a query.
        """
        if candidate.id in self._batch_ids or self.verifier.verifying(candidate.id):
            return True
        if candidate.seq > self.store.max_seq(candidate.author):
            return False
        return self.store.has(candidate.id)

    def holds(self, entry_id: str) -> bool:
        """
        @return: whether the entry with this id is stored, queued to be,
            or being verified (a copy has arrived: grafting it again
            would only bring a duplicate).
        """
        return (entry_id in self._batch_ids or self.verifier.verifying(entry_id)
                or self.store.has(entry_id))

    # Entries out

    def author(self, identity: Identity, kind: str, body: dict) -> Entry:
        """
        Sign a new entry of C{identity}'s feed (a local author) and queue it.

        @raise InvalidEntry: if C{body} is not valid for C{kind}.
        """
        seq, head = self._head(identity.node_id)
        lamport = min(self.lamport + 1, MAX_INTEGER)
        entry = create_entry(
            identity, seq=seq + 1, prev=head, lamport=lamport,
            ts=int(self._wall_clock() * 1000), kind=kind, body=body,
        )
        self.lamport = lamport
        self._heads[identity.node_id] = (entry.seq, entry.id)
        self._queue(entry, None)
        return entry

    def _head(self, author: str) -> Tuple[int, Optional[str]]:
        if author not in self._heads:
            self._heads[author] = self.store.head(author) or (0, None)
        return self._heads[author]

    def _queue(self, entry: Entry, source, live: bool = True) -> None:
        self._batch.append(entry)
        self._batch_ids.add(entry.id)
        self._batch_sources[entry.id] = (source, live)
        if len(self._batch) >= MAX_BATCH_ENTRIES:
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self._clock.callLater(0, self.flush)

    def flush(self) -> None:
        """
        Store every queued entry in one transaction, then report the ones
        that were new.  Nothing is reported before it is committed.
        """
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        batch, sources = self._batch, self._batch_sources
        self._batch, self._batch_ids, self._batch_sources = [], set(), {}
        if not batch:
            return
        try:
            # Only this node's own entries (no source) need a sync to disk.
            durable = any(source is None for source, _ in sources.values())
            result = self.timed(self.store.add_entries, batch, durable)
        except StoreError as e:
            self._store_failed(batch, e)
            return
        self.metrics.entry_stored(len(result.added))
        for entry, existing_id in result.forks:
            self.metrics.entry_rejected("fork")
            self.forks += 1
            self.log.warn(
                "fork detected in the feed of {author} at seq {seq}: "
                "entries {new} and {old}; keeping the first",
                author=f"{entry.name} ({short_id(entry.author)})",
                seq=entry.seq, new=entry.id[:12], old=existing_id[:12],
            )
        for entry, reason in result.rejected:
            self.metrics.entry_rejected("chain")
            self.log.warn(
                "rejected entry {id} of {author}: {reason}",
                id=entry.id[:12], author=f"{entry.name} ({short_id(entry.author)})",
                reason=reason,
            )
        for entry in result.added:
            self._follow_clock(entry)
            if entry.kind == "cert" and self.attestations is not None:
                reason = self.attestations.learn(entry.author, entry.body)
                if reason is not None:
                    self.log.warn(
                        "not believing the name attestation of {author}: {reason}",
                        author=short_id(entry.author), reason=reason,
                    )
            head = self._heads.get(entry.author)
            if head is not None and entry.seq > head[0]:
                self._heads[entry.author] = (entry.seq, entry.id)
            source, live = sources[entry.id]
            for listener in list(self.listeners):
                listener.committed(entry, source, live)
            if source is not None and result.contiguous[entry.author] < entry.seq:
                for listener in list(self.listeners):
                    listener.gap(source)
        if result.added:
            self.on_change()

    def _plausible_lamport(self) -> int:
        """
        @return: the highest Lamport time this node's clock will follow.

        An honest entry with Lamport time L implies a causal chain of L
        entries, so L cannot be far above the number of entries in the
        network.  Holding C{count} entries, a node follows times up to
        C{count + MAX_LAMPORT_LEAD}; one signed entry claiming a time
        near the maximum cannot drag every later post up there (which
        would freeze ordering, and once made every post invalid).
        """
        return self.store.count() + MAX_LAMPORT_LEAD

    def _follow_clock(self, entry: Entry) -> None:
        """
        Advance the Lamport clock past C{entry} if its time is plausible.
        An implausible entry is still stored and reported, so every node
        converges; it just sorts late.
        """
        if entry.lamport <= self.lamport:
            return
        if entry.lamport > self._plausible_lamport():
            self.log.warn(
                "entry {id} of {author} claims Lamport time {claimed}, far ahead "
                "of the {count} entries held; not advancing our clock to it",
                id=entry.id[:12], author=f"{entry.name} ({short_id(entry.author)})",
                claimed=entry.lamport, count=self.store.count(),
            )
            return
        self.lamport = entry.lamport

    def _store_failed(self, batch: List[Entry], error: StoreError) -> None:
        """
        A batch could not be committed (a full disk, an I/O error): nothing
        of it was reported.  Say so once, and rewind the local authors'
        feeds to what is really stored so their next entries chain onto it.
        """
        own = sum(1 for entry in batch if entry.author in self._heads)
        self.metrics.entry_rejected("store_error", len(batch))
        self.log.critical(
            "store write failed, {count} entries not stored ({own} of ours): {error}",
            count=len(batch), own=own, error=str(error),
        )
        for listener in list(self.listeners):
            listener.failed(len(batch), error)
        try:
            heads = {author: self.store.head(author) for author in self._heads}
        except StoreError:
            return
        self._heads = {author: head or (0, None) for author, head in heads.items()}

    def timed(self, call: Callable, *args):
        """
        Run a store call, keeping the longest time one took (the longest
        the reactor was blocked by the store), for C{/status}.
        """
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            elapsed = time.perf_counter() - started
            self.longest_store_call_s = max(self.longest_store_call_s, elapsed)

    def read(self, call: Callable, *args):
        """
        Commit what is queued, then run the store read C{call} timed: the
        answer includes everything already accepted.
        """
        self.flush()
        return self.timed(call, *args)

    def stop(self) -> None:
        """
        Take no more entries; drop those still being verified (never
        acknowledged) and commit what is queued.
        """
        self.stopping = True
        self.verifier.stop()
        self.flush()
