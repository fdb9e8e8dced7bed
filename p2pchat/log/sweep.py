"""
The author space in slices, and the sweep that shares them between the
summary rounds that run at the same time.

A summary round asks one link for everything it holds that this node
lacks.  When a node catches up from several links at once (a fresh node
started with C{--peer} to three nodes), three whole rounds would each
stream the whole log: three copies.  So a round covers the author space
(author ids are random: 64 hex digits, spread evenly) one I{slice} at a
time, in pages bounded by the slice (L{bounds}), and the rounds running at
the same time share one L{Sweep}:

  - B{shared phase}: each link takes the next slice nobody has taken yet
    (L{Sweep.claim}); a slice is asked of one link only, so each entry is
    streamed once.
  - B{confirm phase}: a round is still a question to I{its} link about
    every slice (a link may hold entries the others do not), so once no
    slice is left to share, each link asks its own link about the slices
    the others answered.  It does so only when none of them is still
    being answered and what they sent is committed (the node's
    C{pending()} is 0): the slices are then asked with what this node now
    holds, and a link that holds nothing more sends nothing.  The wait is
    bounded: C{confirm_wait_s} for the commits, and a link still asking a
    shared slice is waited for only while it streams (a silent peer holds
    up nobody else's round for more than C{confirm_wait_s}).

A round with a single link takes every slice in turn in the shared phase,
so it has no confirm phase.  Slices cost one page each when this node
holds nothing in them (the page names the slice's last id with 0: "I hold
nothing of it"), which protocol-2 and -3 peers answer as any page: a page
that is not final covers the authors in (C{after}, its greatest key].
"""

from collections import deque
from typing import Deque, Dict, Optional, Set, Tuple

from p2pchat.log.replication_state import DEFAULT_SLICES, PAGE_AUTHORS
from p2pchat.mesh import wire
from p2pchat.mesh.wire import FrameError

SPACE = 1 << 256


def bounds(index: int, slices: int) -> Tuple[Optional[str], Optional[str]]:
    """
    @return: slice C{index}'s authors as C{(after, upto)}: the authors
        greater than C{after} (C{None}: from the start) and at most
        C{upto} (C{None}: to the end; the last slice).
    """
    def last_id(i):
        return format((i + 1) * SPACE // slices - 1, "064x")

    after = last_id(index - 1) if index > 0 else None
    upto = last_id(index) if index < slices - 1 else None
    return after, upto


class Sweep:
    """
    The slices shared by the summary rounds running at the same time.

    @ivar slices: how many slices the author space is cut into.
    @ivar open: slices of the current sweep no link has taken, in order.
    @ivar busy: shared slices being asked, by link.
    @ivar members: links whose round is running.
    """

    def __init__(self, slices: int = DEFAULT_SLICES):
        if slices < 1:
            raise ValueError("at least one slice")
        self.slices = slices
        self.open: Deque[int] = deque()
        self.busy: Dict[int, object] = {}
        self.members: Set[object] = set()

    def join(self, link) -> Set[int]:
        """
        C{link}'s round starts: it joins the running sweep, or starts a
        new one (every slice open) when no round runs.

        @return: the slices the round must cover with its link (all).
        """
        if not self.members:
            self.open = deque(range(self.slices))
            self.busy.clear()
        self.members.add(link)
        return set(range(self.slices))

    def claim(self, link) -> Optional[int]:
        """
        @return: the next slice nobody has taken, now C{link}'s to ask,
            or C{None} if none is left.
        """
        if not self.open:
            return None
        index = self.open.popleft()
        self.busy[index] = link
        return index

    def answered(self, index: int) -> None:
        """
        The shared slice C{index} was answered.
        """
        self.busy.pop(index, None)

    def settled(self) -> bool:
        """
        @return: whether every shared slice has been taken and answered
            (the confirm phase may start, once the answers are committed).
        """
        return not self.open and not self.busy

    def leave(self, link) -> None:
        """
        C{link}'s round is over or its link closed: a shared slice it was
        asking goes back to the front, for another link to take.
        """
        self.members.discard(link)
        for index, holder in list(self.busy.items()):
            if holder == link:
                del self.busy[index]
                self.open.appendleft(index)


def slice_page(after: Optional[str], rows, limit: int, upto: Optional[str]):
    """
    One page of a summary round in a slice that ends at C{upto}.

    @param after: the page covers authors greater than this.
    @param rows: C{(author, contiguous, head)} of at most C{limit} held
        feeds after C{after}, ascending (some may lie beyond the slice).
    @return: the C{summary} frame and whether it closes the slice (the
        page then covers the slice to its end: it names C{upto}, with 0
        if this node holds nothing of it; the last slice's closing page
        is C{final}).
    """
    if upto is not None:
        rows = [row for row in rows if row[0] <= upto]
    vv = {author: (c if c == h else [c, h]) for author, c, h in rows}
    closing = len(rows) < limit or rows[-1][0] == upto
    if closing and upto is not None and upto not in vv:
        vv[upto] = 0
    return wire.summary_page(after, vv, closing and upto is None), closing


class Rounds:
    """
    This node's own summary rounds on all its links, sharing one L{Sweep}.
    Part of the L{p2pchat.log.replication.Replicator} (sans-IO: it asks
    the replicator's output for everything), kept apart for size.
    """

    def __init__(self, clock, output, config, links: Dict[object, object]):
        """
        @param config: a L{p2pchat.log.replication.ReplicationConfig}.
        @param links: the replicator's L{LinkState} of each link (shared).
        """
        self._clock = clock
        self._output = output
        self._config = config
        self._links = links
        self.sweep = Sweep(config.summary_slices)

    def start(self, link) -> None:
        """
        Start a round on C{link}, or run one more right after the one
        running (requests coalesce).
        """
        state = self._links.get(link)
        if state is None:
            return
        if state.round_active:
            state.rerun = True
            return
        state.round_active, state.todo = True, self.sweep.join(link)
        self._next_slice(link, state)

    def _next_slice(self, link, state) -> None:
        """
        Ask C{link} the next slice: one nobody took yet, else (once every
        shared slice is answered and committed) one the others answered;
        wait if neither may go yet; end the round when none is left.
        """
        index, shared = self.sweep.claim(link), True
        if index is None and state.todo and self._may_confirm(state):
            index, shared = min(state.todo), False
        if index is not None:
            state.slice, state.shared, state.waiting_since = index, shared, None
            state.streamed_at = self._clock.seconds()
            state.round_after = bounds(index, self.sweep.slices)[0]
            self._output.when_ready(link, lambda: self._send_page(link))
        elif state.todo:
            if state.waiting_since is None:
                state.waiting_since = self._clock.seconds()
        else:
            state.round_active, state.slice = False, None
            self.sweep.leave(link)
            if state.rerun:
                state.rerun = False
                self.start(link)
            else:
                self._output.settle(link)

    def _may_confirm(self, state) -> bool:
        """
        Whether the confirm phase may start for a round that waits: every
        shared slice answered and what came committed; or, after
        C{confirm_wait_s} of waiting, whatever is still being committed,
        or asked of a link that sent nothing for that long (a peer that
        never answers stalls nobody else's round).
        """
        now = self._clock.seconds()
        since = now if state.waiting_since is None else state.waiting_since
        waited = now - since >= self._config.confirm_wait_s
        if not self.sweep.settled():
            return waited and all(
                now - self._links[link].streamed_at >= self._config.confirm_wait_s
                for link in self.sweep.busy.values() if link in self._links)
        return waited or self._output.pending() == 0

    def wake(self) -> None:
        """
        Let the rounds that wait (for the confirm phase, or for a slice
        given back by a closed link) go on if they may (on every tick).
        """
        for link, state in list(self._links.items()):
            if state.round_active and state.slice is None:
                self._next_slice(link, state)

    def _send_page(self, link) -> None:
        state = self._links.get(link)
        if (state is None or not state.round_active or state.slice is None
                or state.page_unanswered):
            return
        rows = self._output.feeds_page(state.round_after, PAGE_AUTHORS)
        frame, closing = slice_page(state.round_after, rows, PAGE_AUTHORS,
                                    bounds(state.slice, self.sweep.slices)[1])
        # The next page of the slice starts after this one's last author.
        state.round_after = next(reversed(frame["vv"]), state.round_after)
        state.page_unanswered, state.slice_closed = True, closing
        self._output.solicit(link)
        self._output.send(link, frame)

    def more(self, link, state) -> None:
        """
        C{link} answered this node's last page.

        @raise FrameError: if no page was unanswered.
        """
        if not state.page_unanswered:
            raise FrameError("more without an unanswered summary page")
        state.page_unanswered = False
        if not state.slice_closed:
            self._output.when_ready(link, lambda: self._send_page(link))
            return
        if state.shared:
            self.sweep.answered(state.slice)
        state.todo.discard(state.slice)
        state.slice = None
        self._next_slice(link, state)
        self.wake()

    def streamed(self, link) -> None:
        """
        C{link} sent an entry marked C{sync}: its answer is progressing.
        """
        state = self._links.get(link)
        if state is not None:
            state.streamed_at = self._clock.seconds()

    def closed(self, link) -> None:
        """
        C{link} closed during its round: its shared slice goes to another.
        """
        self.sweep.leave(link)
        self.wake()
