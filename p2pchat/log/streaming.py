"""
Streaming stored entries to a peer with flow control.

An L{EntryStreamer} is the push producer of one peer link.  Everything
this node sends on the link that can be large goes through it, a bounded
amount per reactor turn, and it stops while the transport says its
buffers are full (C{pauseProducing}).  A peer that reads slowly therefore
slows this node's answers instead of making it buffer without bound.  It
does, in this order of priority:

  - B{pushes}: live entries the relay could not write at once because the
    transport was full (L{EntryStreamer.push}), kept as runs of one
    author's consecutive seqs and read back from the store in chain order
    (a burst of 10,000 posts is one run, not 10,000 entries in memory);
    sent as live entries, as the relay would have.  Before these, a burst
    larger than the transport's buffer was announced by id past its first
    ~100 entries, and the peer grafted the rest after its graft timeout
    (1 s): a 1,000-line paste took 1.3 s to cross one idle link;
  - B{actions}: one deferred call at a time (the replicator's next summary
    page of this node's own version vector), run only when not paused;
  - B{grafts}: the entries a peer asked for by id, de-duplicated, at most
    L{MAX_PENDING_GRAFTS} ids pending (more are dropped and counted in
    C{grafts_dropped});
  - B{page answers}: the walk over this node's own feeds in the author
    range of one summary page the peer sent, L{WALK_AUTHORS} authors per
    turn and only while fewer than L{WALK_AUTHORS} authors are queued,
    queueing per author what the peer lacks (see
    L{p2pchat.log.replication.wanted}); when the walk is over and what it
    queued is sent, the page's C{done} callback runs (the replicator then
    acknowledges the page);
  - B{cursors}: each queued author's entries after a seq (and at most one
    I{hole}, a run of seqs starting at a given seq, per author), in chain
    order.

Entries the link's protocol version does not know (room entries, on a
link to a protocol-2 node: L{p2pchat.log.rooms.understood_by}) are
withheld, never sent, and counted in C{withheld}.

Memory per link: at most L{MAX_PUSH_RUNS} push runs (three fields each),
at most one page answer (the peer's page, at most 500 authors), at most
2 x L{WALK_AUTHORS} + 500 queued authors (cursors and holes),
L{MAX_PENDING_GRAFTS} graft ids, and one batch of at most C{batch_entries}
entries (each at most one 64 KiB frame).  Work per reactor turn: at most
C{batch_entries} entries read and sent, one feeds page of L{WALK_AUTHORS}
authors, and one action.
"""

from collections import deque
from typing import Callable, Deque, Dict, List, Optional

from twisted.internet.interfaces import IPushProducer, IReactorTime
from zope.interface import implementer

from p2pchat.log.rooms import ROOMS_VERSION, understood_by
from p2pchat.mesh import wire

DEFAULT_BATCH_ENTRIES = 200
WALK_AUTHORS = 200
MAX_PENDING_GRAFTS = 2000
# Runs of pushes waiting for a full transport (see EntryStreamer.push): one
# per author in the usual case, so this bounds the authors, not the entries.
MAX_PUSH_RUNS = 1000


class _PageAnswer:
    """
    The walk answering one summary page: authors in (after, upto] (upto
    C{None}: to the end), compared with the asker's C{vv}.
    """

    def __init__(self, after, upto, vv, done):
        self.cursor = after
        self.upto = upto
        self.vv = vv
        self.done = done
        self.walked = False


@implementer(IPushProducer)
class EntryStreamer:
    """
    Streams entries to one link.

    @ivar sent: how many entries it has sent.
    @ivar withheld: how many it did not send because the link's protocol
        version does not know them.
    @ivar grafts_dropped: graft ids dropped because L{MAX_PENDING_GRAFTS}
        were already pending.
    """

    def __init__(
        self,
        link,
        entries_after: Callable[[str, int, int], List],
        clock: IReactorTime,
        batch_entries: int = DEFAULT_BATCH_ENTRIES,
        get: Optional[Callable[[str], object]] = None,
        feeds_page: Optional[Callable[..., List[tuple]]] = None,
        wanted: Optional[Callable[[object, int, int], tuple]] = None,
        version: int = ROOMS_VERSION,
    ):
        """
        @param link: the L{p2pchat.mesh.peer.PeerProtocol} to send on.
        @param entries_after: the store's C{entries_after(author, seq,
            limit)}.
        @param clock: schedules the next batch.
        @param get: the store's C{get(entry_id)} (for grafts).
        @param feeds_page: the store's C{feeds_page(after, limit, upto)}
            (for page answers).
        @param wanted: L{p2pchat.log.replication.wanted}.
        @param version: the protocol version of the link.
        """
        self._link = link
        self._entries_after = entries_after
        self._get = get
        self._feeds_page = feeds_page
        self._wanted = wanted
        self._clock = clock
        self._batch_entries = batch_entries
        self._cursors: Dict[str, int] = {}
        # Pushes waiting: runs [author, first seq, last seq] in the order
        # they were queued, and each author's last run (the one to extend).
        self._pushes: Deque[List] = deque()
        self._last_run: Dict[str, List] = {}
        self._holes: Dict[str, int] = {}
        self._grafts: Dict[str, None] = {}
        self._page: Optional[_PageAnswer] = None
        self._action: Optional[Callable[[], None]] = None
        self._paused = False
        self._stopped = False
        self._call = None
        self._version = version
        self.sent = 0
        self.withheld = 0
        self.grafts_dropped = 0

    @property
    def pushing(self) -> bool:
        """
        Whether pushes are waiting: a new live entry must queue behind them
        (L{push}), or it would overtake its author's earlier entries.
        """
        return bool(self._pushes)

    @property
    def push_runs(self) -> List[tuple]:
        """
        The pushes waiting, as C{(author, first seq, last seq)} runs in
        the order they go.
        """
        return [tuple(run) for run in self._pushes]

    def push(self, entry) -> bool:
        """
        Queue the committed live C{entry} (held in the store) to be sent
        in full when the transport has room, after the pushes already
        queued.

        @return: whether it was queued; C{False} when L{MAX_PUSH_RUNS} runs
            are waiting and C{entry} does not extend its author's last one
            (then announce it instead), or the producer is stopped.
        """
        if self._stopped:
            return False
        run = self._last_run.get(entry.author)
        if run is not None and entry.seq == run[2] + 1:
            run[2] = entry.seq
            return True
        if len(self._pushes) >= MAX_PUSH_RUNS:
            return False
        run = [entry.author, entry.seq, entry.seq]
        self._pushes.append(run)
        self._last_run[entry.author] = run
        self._schedule()
        return True

    def request(self, cursors: Dict[str, int]) -> None:
        """
        Also send each author's entries after its cursor (a lower cursor
        than one already queued wins).
        """
        for author, seq in cursors.items():
            self._cursors[author] = min(seq, self._cursors.get(author, seq))
        self._schedule()

    def graft(self, entry_ids: List[str]) -> int:
        """
        Also send the held entries with these ids (ids already pending
        are not queued twice).

        @return: how many ids were dropped because L{MAX_PENDING_GRAFTS}
            were pending.
        """
        dropped = 0
        for entry_id in entry_ids:
            if entry_id in self._grafts:
                continue
            if len(self._grafts) >= MAX_PENDING_GRAFTS:
                dropped += 1
                continue
            self._grafts[entry_id] = None
        self.grafts_dropped += dropped
        self._schedule()
        return dropped

    def answer(self, after: Optional[str], upto: Optional[str], vv: dict,
               done: Callable[[], None]) -> None:
        """
        Walk this node's feeds in (C{after}, C{upto}] and send what the
        asker lacks according to C{vv}; then call C{done}.  One page at a
        time: the replicator does not call this while a page is unanswered.
        """
        assert self._page is None, "one summary page at a time"
        self._page = _PageAnswer(after, upto, vv, done)
        self._schedule()

    def when_ready(self, action: Callable[[], None]) -> None:
        """
        Call C{action} from this producer, soon, when the transport is not
        congested (replaces an action not yet run).
        """
        self._action = action
        self._schedule()

    @property
    def paused(self) -> bool:
        """
        Whether the transport said its buffers are full: the link is
        congested, so nothing more should be pushed on it for now.
        """
        return self._paused

    def _schedule(self) -> None:
        idle = not (
            self._pushes or self._cursors or self._holes or self._grafts or self._page
            or self._action
        )
        if not idle and not self._paused and not self._stopped and self._call is None:
            self._call = self._clock.callLater(0, self._send_batch)

    def _send(self, entries: List, sync: bool = True) -> None:
        for entry in entries:
            if understood_by(self._version, entry.kind, entry.body):
                self._link.send_frame(wire.entry_frame(entry.to_wire(), sync=sync))
                self.sent += 1
            else:
                self.withheld += 1

    def _send_batch(self) -> None:
        self._call = None
        if self._action is not None:
            action, self._action = self._action, None
            action()
        budget = self._send_pushes(self._batch_entries)
        while budget > 0 and self._grafts and self._running():
            entry_id = next(iter(self._grafts))
            del self._grafts[entry_id]
            entry = self._get(entry_id)
            budget -= 1
            if entry is not None:
                self._send([entry])
        self._walk()
        while budget > 0 and self._holes and self._running():
            author = next(iter(self._holes))
            low, high = self._holes.pop(author)
            requested = min(budget, high - low + 1)
            found = self._entries_after(author, low - 1, requested)
            run = []
            for entry in found:
                if entry.seq != low + len(run):
                    break  # this node's own gap: the run stops here
                run.append(entry)
            self._send(run)
            budget -= len(run) or 1
            if len(run) == requested and run[-1].seq < high:
                self._holes[author] = (run[-1].seq + 1, high)
        while budget > 0 and not self._holes and self._cursors and self._running():
            author = next(iter(self._cursors))
            requested = budget
            entries = self._entries_after(author, self._cursors[author], requested)
            self._send(entries)
            budget -= len(entries) or 1
            if len(entries) < requested:
                del self._cursors[author]
            else:
                self._cursors[author] = entries[-1].seq
        page = self._page
        if (page is not None and page.walked and not self._cursors and not self._holes
                and self._running()):
            self._page = None
            page.done()
        self._schedule()

    def _send_pushes(self, budget: int) -> int:
        """
        Send queued pushes, oldest run first, up to C{budget} entries.

        @return: what is left of C{budget}.
        """
        while budget > 0 and self._pushes and self._running():
            run = self._pushes[0]
            author, low, high = run
            requested = min(budget, high - low + 1)
            found = [e for e in self._entries_after(author, low - 1, requested) if e.seq <= high]
            # Entry by entry: the transport may pause the producer midway.
            sent = 0
            for entry in found:
                if not self._running():
                    break
                self._send([entry], sync=False)
                sent += 1
            budget -= sent or 1
            if sent:
                run[1] = found[sent - 1].seq + 1
            if not found or run[1] > high:
                # Done, or no longer stored (nothing to push).
                self._pushes.popleft()
                if self._last_run.get(author) is run:
                    del self._last_run[author]
        return budget

    def _running(self) -> bool:
        return not self._paused and not self._stopped

    def _walk(self) -> None:
        page = self._page
        if (page is None or page.walked or not self._running()
                or len(self._cursors) + len(self._holes) >= WALK_AUTHORS):
            return
        rows = self._feeds_page(page.cursor, WALK_AUTHORS, page.upto)
        for author, contiguous, head in rows:
            hole, cursor = self._wanted(page.vv.get(author), contiguous, head)
            if hole is not None:
                self._holes[author] = hole
            if cursor is not None:
                self._cursors[author] = min(cursor, self._cursors.get(author, cursor))
        if rows:
            page.cursor = rows[-1][0]
        if len(rows) < WALK_AUTHORS:
            page.walked = True

    def pauseProducing(self) -> None:
        self._paused = True
        if self._call is not None:
            self._call.cancel()
            self._call = None

    def resumeProducing(self) -> None:
        self._paused = False
        self._schedule()

    def stopProducing(self) -> None:
        self._stopped = True
        self._pushes.clear()
        self._last_run.clear()
        self._cursors.clear()
        self._holes.clear()
        self._grafts.clear()
        self._page = None
        self._action = None
        if self._call is not None:
            self._call.cancel()
            self._call = None
