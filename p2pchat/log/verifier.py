"""
Decoding and signature verification of entries received from peers.

Checking an Ed25519 signature costs ~60 us; a flood of valid entries on
ten links asked the reactor thread for ~1,000 of them in one turn.  A
L{ThreadedVerifier} checks them in batches on a thread pool (PyNaCl
releases the GIL while it verifies) and hands the results back on the
reactor thread in the order the entries arrived; while it holds at most
L{INLINE_BATCH} entries (and L{INLINE_BYTES}) in all and none in the
pool (live chat), it checks them on the reactor thread, where they cost
less than the hand-offs.  An L{InlineVerifier} checks at once, on the caller's thread:
the default, so that a L{p2pchat.log.feed.Feed} stays testable
synchronously.

An entry comes either parsed (L{submit}: an L{UnverifiedEntry}) or as the
unparsed line of its frame (L{submit_raw}: a
L{p2pchat.mesh.raw_entry.RawEntry}).  A raw entry is first decoded (JSON,
every field, the canonical encodings and the id: L{decode_batch}) in a
batch in a thread; back on the reactor thread, in arrival order, C{admit}
(set by the feed: is the id new, may the link cost us a new author?)
says whether it is worth a signature check, which follows in a batch too.

Both call C{done(candidate, entry, error, source, live)} once per
entry that was not dropped by C{admit}, in arrival order: C{entry} is the
verified L{Entry} or C{None}, and C{error} the L{InvalidEntry} when the
entry is malformed (C{candidate} is then C{None}) or its signature bad.

Bound: a L{ThreadedVerifier} takes entries until C{budget} entries or
C{bytes_budget} signed bytes are queued for or in verification; the entry
that fills either budget is still taken (it has been read) and its link is
held (L{p2pchat.mesh.peer.PeerProtocol.hold}) for C{hold_s}, so that link's
further lines wait in its buffer and socket (a held link reads no further
line).  Links read again after their hold while verification still lags
add one entry each per hold, up to C{overshoot} entries (of at most
L{p2pchat.mesh.wire.MAX_LINE_BYTES} each) beyond the budgets; past that, each
entry read still is taken (nothing valid is dropped: a flooder's entries
are slowed, never lost) but holds its link ten times as long, so all links
together add at most C{MAX_LINKS / (10 x hold_s)} = 128 entries a second
while verification drains thousands.  In all: about 2,064 entries and
8 MiB + 64 x 64 KiB of signed bytes (of line bytes, for a raw entry not
yet decoded), about twice that in memory with the parsed fields, plus that
slow trickle while verification lags.
"""

from collections import deque
from typing import Callable, Deque, List, Optional, Set

from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pchat.log.entry import Entry, InvalidEntry, UnverifiedEntry, parse_entry
from p2pchat.mesh.raw_entry import RawEntry
from p2pchat.mesh.wire import MAX_LINE_BYTES, FrameError

# Entries queued for or in verification, over all links, and their signed
# bytes (an entry line is at most wire.MAX_LINE_BYTES).
VERIFY_BUDGET = 2000
VERIFY_BYTES_BUDGET = 8 * 1024 * 1024
# Entries sent to the thread pool in one call.  Results come back (and are
# stored, shown and relayed) in one reactor turn per MAX_BATCHES_IN_THREADS
# batches, so this also bounds that turn: 100 kept the longest turn of a
# flooded node at 94-161 ms where 250 gave 149-296 ms, with catch-up as fast.
VERIFY_BATCH = 100
# Entries that catch this node up (not live) go in batches of up to this
# many: their results come back, and are committed, together, and each
# commit costs a sync of the store's file (4-12 ms on the 2-core machine):
# per entry, at 100 a batch, as much as its signature check.  On the
# loaded 2-core machine 250 kept the longest turn of a catching-up node at
# 69-86 ms (100: 71-72 ms) where 500 gave 80-334 ms for 3 % less CPU.
CATCHUP_BATCH = 250
# While the verifier holds at most this many entries in all and no batch
# is in the thread pool, they are decoded and verified on the reactor
# thread: for live chat (an entry or two a turn) two hand-offs to a
# thread and back cost more CPU than the work (a receiving node: 1.50-1.66
# ms of CPU per live entry with threads, 1.24-1.32 ms inline, 500 entries
# at 50/s); at most 4 entries and 16 KiB, about 0.4-0.8 ms, a turn.  (A
# limit on the batch alone also took the small batches a backlog leaves,
# such as the few entries admit takes of a decoded batch under a flood:
# others' chat through a flooded node took 144-575 ms, not 6-60 ms.)
INLINE_BATCH, INLINE_BYTES = 4, 16 * 1024
# Batches in the thread pool at once (this machine class has two cores).
MAX_BATCHES_IN_THREADS = 2
# Entries taken beyond a full budget (one per link of MAX_LINKS) before
# entries are dropped.
OVERSHOOT = 64
# How long a link that found the budget full is not read.
HOLD_S = 0.05

Done = Callable[[UnverifiedEntry, Optional[Entry], Optional[InvalidEntry], object, bool], bool]
Admit = Callable[[UnverifiedEntry, object, bool], bool]


def _admit_all(candidate: UnverifiedEntry, source, live: bool) -> bool:
    return True


def decode(raw: RawEntry) -> object:
    """
    Parse and check one raw entry: everything but its signature.

    @return: the L{UnverifiedEntry}, or the L{InvalidEntry} saying why it
        is refused (a line L{p2pchat.mesh.wire.parse_frame} refuses is
        refused as C{bad frame: ...}).
    """
    try:
        return parse_entry(raw.load())
    except FrameError as e:
        return InvalidEntry(f"bad frame: {e}")
    except InvalidEntry as e:
        return e


def decode_batch(raws: List[RawEntry]) -> List[object]:
    """
    L{decode} each of C{raws} (in a thread: no reactor, no shared state).
    """
    return [decode(raw) for raw in raws]


def verify_batch(candidates: List[UnverifiedEntry]) -> List[object]:
    """
    Verify C{candidates} (in a thread: no reactor, no shared state).

    @return: per candidate, the verified L{Entry} or the L{InvalidEntry}.
    """
    results: List[object] = []
    for candidate in candidates:
        try:
            results.append(candidate.verify())
        except InvalidEntry as e:
            results.append(e)
    return results


class InlineVerifier:
    """
    Verify each entry at once, on the caller's thread.
    """

    def __init__(self, done: Done):
        self._done = done
        self.admit: Admit = _admit_all

    def verifying(self, entry_id: str) -> bool:
        return False

    def submit_raw(self, raw: RawEntry, source, live: bool) -> bool:
        """
        Decode C{raw}, ask C{admit}, and verify it.

        @return: what C{done} returned, or C{False} if C{admit} dropped it.
        """
        result = decode(raw)
        if isinstance(result, InvalidEntry):
            return self._done(None, None, result, source, live)
        if not self.admit(result, source, live):
            return False
        return self.submit(result, source, live)

    def submit(self, candidate: UnverifiedEntry, source, live: bool) -> bool:
        """
        @return: what C{done} returned (whether the entry was valid and new).
        """
        try:
            entry, error = candidate.verify(), None
        except InvalidEntry as e:
            entry, error = None, e
        return self._done(candidate, entry, error, source, live)

    def stop(self) -> int:
        return 0


class _Pending:
    __slots__ = ("candidate", "raw", "source", "live", "result", "settled", "size", "counted")

    def __init__(self, candidate: Optional[UnverifiedEntry], raw: Optional[RawEntry], source,
                 live: bool):
        self.candidate = candidate
        self.raw = raw
        self.source = source
        self.live = live
        self.result: object = None
        self.settled = False
        self.size = len(raw) if candidate is None else candidate.size
        # Whether its id is in ThreadedVerifier._ids.
        self.counted = False


class ThreadedVerifier:
    """
    Verify entries in batches with C{defer_to_thread} (a
    C{deferToThreadPool} bound to a reactor and pool), and call C{done}
    on the reactor thread in arrival order.

    Entries that arrive in one reactor turn form a batch (sent on the
    next turn, or at once when L{VERIFY_BATCH} are waiting); at most
    L{MAX_BATCHES_IN_THREADS} batches (to decode or to verify) are in the
    pool at once, those to verify first.

    @ivar in_flight: entries queued for or in decoding or verification.
    @ivar admit: asked on the reactor thread, in arrival order, whether a
        decoded raw entry is verified (C{True}) or dropped (C{False}).
    """

    log = Logger()

    def __init__(
        self,
        done: Done,
        defer_to_thread: Callable,
        call_later: Callable,
        budget: int = VERIFY_BUDGET,
        bytes_budget: int = VERIFY_BYTES_BUDGET,
        batch: int = VERIFY_BATCH,
        catchup_batch: int = CATCHUP_BATCH,
        overshoot: int = OVERSHOOT,
        hold_s: float = HOLD_S,
        inline: int = INLINE_BATCH,
    ):
        """
        @param inline: while at most this many entries are in the
            verifier and none in the pool, they are decoded and verified
            on the calling thread (L{INLINE_BATCH}; 0: never).
        """
        self._done = done
        self._inline = inline
        self._defer = defer_to_thread
        self._call_later = call_later
        self.budget = budget
        self.bytes_budget = bytes_budget
        self.bytes_in_flight = 0
        self._batch_size = batch
        self._catchup_batch = catchup_batch
        self._hold_s = hold_s
        self._overshoot = overshoot
        self.admit: Admit = _admit_all
        self._order: Deque[_Pending] = deque()
        # To verify, and (raw entries) to decode.
        self._waiting: List[_Pending] = []
        self._undecoded: List[_Pending] = []
        self._ids: Set[str] = set()
        self._in_threads = 0
        self._dispatch_call = None
        self._stopped = False

    @property
    def in_flight(self) -> int:
        return len(self._order)

    def verifying(self, entry_id: str) -> bool:
        """
        @return: whether an entry with this id is queued or in
            verification (so another copy counts as known).
        """
        return entry_id in self._ids

    def submit(self, candidate: UnverifiedEntry, source, live: bool) -> bool:
        """
        Queue C{candidate} for verification.  When this fills the budget,
        hold C{source} for a short time.

        @return: whether the entry was taken (its fate comes later).
        """
        return self._submit(_Pending(candidate, None, source, live))

    def submit_raw(self, raw: RawEntry, source, live: bool) -> bool:
        """
        Queue C{raw} for decoding, then (if C{admit} takes it)
        verification; the budgets count it from now, as in L{submit}.

        @return: whether the entry was taken (its fate comes later).
        """
        return self._submit(_Pending(None, raw, source, live))

    def _submit(self, pending: _Pending) -> bool:
        source = pending.source
        if self._stopped:
            return False
        over = self._overshoot
        if len(self._order) >= self.budget + over or (
            self.bytes_in_flight >= self.bytes_budget + over * MAX_LINE_BYTES
        ):
            # Still taken (it has been read and may be valid), but its link
            # now waits ten holds: the trickle past the overshoot stays slow.
            if source is not None:
                source.hold(self._hold_s * 10)
            return self._take(pending, hold=False)
        return self._take(pending, hold=True)

    def _take(self, pending: _Pending, hold: bool) -> bool:
        source = pending.source
        self._order.append(pending)
        if pending.candidate is None:
            self._undecoded.append(pending)
        else:
            self._count(pending)
        self.bytes_in_flight += pending.size
        full = len(self._order) >= self.budget or self.bytes_in_flight >= self.bytes_budget
        if hold and full and source is not None:
            source.hold(self._hold_s)
        if len(self._waiting) >= self._batch_size or len(self._undecoded) >= self._batch_size:
            self._dispatch()
        elif self._dispatch_call is None:
            self._dispatch_call = self._call_later(0, self._dispatch)
        return True

    def _count(self, pending: _Pending) -> None:
        self._waiting.append(pending)
        self._ids.add(pending.candidate.id)
        pending.counted = True

    def _dispatch(self) -> None:
        if self._dispatch_call is not None:
            if self._dispatch_call.active():
                self._dispatch_call.cancel()
            self._dispatch_call = None
        while self._in_threads < MAX_BATCHES_IN_THREADS:
            if self._waiting:
                batch = self._next_batch(self._waiting)
                work, done = [pending.candidate for pending in batch], self._verified
                call = verify_batch
            elif self._undecoded:
                batch = self._next_batch(self._undecoded)
                work, done = [pending.raw for pending in batch], self._decoded
                call = decode_batch
            else:
                return
            self._in_threads += 1
            if (len(self._order) <= self._inline and self._in_threads == 1
                    and self.bytes_in_flight <= INLINE_BYTES):
                # Live chat: cheaper here than a hand-off (INLINE_BATCH).
                try:
                    results = call(work)
                except Exception:
                    self._failed(Failure(), batch)
                else:
                    done(results, batch)
                continue
            d = self._defer(call, work)
            d.addCallbacks(done, self._failed, (batch,), None, (batch,), None)

    def _next_batch(self, queue: List[_Pending]) -> List[_Pending]:
        """
        Take the next batch off C{queue}: up to L{CATCHUP_BATCH} entries
        that catch this node up, or up to L{VERIFY_BATCH} when live
        entries are among them.
        """
        size = self._batch_size
        if not queue[0].live:
            size = next(
                (i for i, p in enumerate(queue[: self._catchup_batch]) if p.live),
                min(len(queue), self._catchup_batch),
            )
            size = max(size, min(len(queue), self._batch_size))
        batch = queue[:size]
        del queue[:size]
        return batch

    def _decoded(self, results: List[object], batch: List[_Pending]) -> None:
        """
        A batch of raw entries is decoded: in arrival order, refuse the
        malformed, drop those C{admit} refuses, queue the rest to verify.
        """
        self._in_threads -= 1
        if self._stopped:
            return
        for pending, result in zip(batch, results):
            pending.raw = None
            if isinstance(result, UnverifiedEntry):
                pending.candidate = result
                if self.admit(result, pending.source, pending.live):
                    self._count(pending)
                    continue
                result = None
            pending.result, pending.settled = result, True
        self._drain()
        self._dispatch()

    def _verified(self, results: List[object], batch: List[_Pending]) -> None:
        self._in_threads -= 1
        if self._stopped:
            return
        for pending, result in zip(batch, results):
            pending.result, pending.settled = result, True
        self._drain()
        self._dispatch()

    def _failed(self, failure, batch: List[_Pending]) -> None:
        """
        The pool could not run a batch (a bug, not the peers' doing):
        drop its entries (they come again through anti-entropy).
        """
        self._in_threads -= 1
        if self._stopped:
            return
        self.log.failure("verifying {count} entries failed", failure, count=len(batch))
        for pending in batch:
            pending.settled = True
        self._drain()
        self._dispatch()

    def _drain(self) -> None:
        while self._order and self._order[0].settled:
            pending = self._order.popleft()
            if pending.counted:
                self._ids.discard(pending.candidate.id)
            self.bytes_in_flight -= pending.size
            result = pending.result
            if isinstance(result, Entry):
                self._done(pending.candidate, result, None, pending.source, pending.live)
            elif isinstance(result, InvalidEntry):
                self._done(pending.candidate, None, result, pending.source, pending.live)

    def stop(self) -> int:
        """
        Drop everything queued or in verification (none of it was
        acknowledged or stored); results that come back later are ignored.

        @return: how many entries were dropped.
        """
        self._stopped = True
        if self._dispatch_call is not None and self._dispatch_call.active():
            self._dispatch_call.cancel()
        self._dispatch_call = None
        dropped = len(self._order)
        if dropped:
            self.log.info(
                "stopping: dropping {count} received entries still being verified "
                "(never acknowledged; they come again from peers)", count=dropped,
            )
        self._order.clear()
        self._waiting.clear()
        self._undecoded.clear()
        self._ids.clear()
        self.bytes_in_flight = 0
        return dropped


def threaded_verifier(reactor) -> Callable[[Done], ThreadedVerifier]:
    """
    @return: a factory of L{ThreadedVerifier}s on C{reactor}'s thread pool,
        for L{p2pchat.log.feed.Feed}'s C{verifier} argument.
    """

    def defer_to_thread(f, *args):
        return deferToThreadPool(reactor, reactor.getThreadPool(), f, *args)

    return lambda done: ThreadedVerifier(done, defer_to_thread, reactor.callLater)
