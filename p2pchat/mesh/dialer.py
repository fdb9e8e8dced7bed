# -*- test-case-name: tests.unit.test_dialer -*-
"""
L{Dialer}: the one place a node opens links.

Every outbound attempt goes through it: the seeds (C{--peer} and
C{/connect}), which it keeps dialling with back-off until the node has
other links, and membership's one-shot dials.  It holds one table of what
is being dialled, one table of the links it opened, and one back-off per
address, so an address already linked or being dialled is not dialled
again, and an address that just failed is not dialled again before its
back-off has passed, whoever asks.

It is sans-IO but for L{Deferred}s: the clock and the I/O (open a link,
is an address linked, close the links at an address) are given to it.
"""

import random
from typing import Callable, Dict, List, Optional, Set

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from p2pchat.addresses import PeerAddress
from p2pchat.log.identity import short_id
from p2pchat.safe import printable

INITIAL_DELAY_S = 0.5
MAX_DELAY_S = 30.0


def backoff_delay(failures: int, jitter: float = 0.0) -> float:
    """
    @param failures: failed attempts (or refused links) in a row.
    @param jitter: a number in [0, 1) to spread redials of several nodes.
    @return: seconds to wait before dialling again: 0.5 s doubling up to
        30 s, plus up to 10% jitter.
    """
    delay = min(INITIAL_DELAY_S * 2 ** min(failures, 16), MAX_DELAY_S)
    return delay * (1 + jitter / 10)


class Dialer:
    """
    Opens this node's links.

    @ivar seeds: the addresses kept dialled until the node has other links.
    @ivar dropped: the addresses the user disconnected from: membership
        does not dial them again until the user connects to them.
    """

    log = Logger()

    def __init__(
        self,
        clock: IReactorTime,
        attempt: Callable[[PeerAddress], Deferred],
        linked: Callable[[PeerAddress], bool],
        link_count: Callable[[], int],
        close: Callable[[PeerAddress], int],
        jitter: Callable[[], float] = random.random,
        linked_peer: Callable[[str], bool] = lambda node_id: False,
        own_id: Optional[str] = None,
    ):
        """
        @param attempt: opens a link to an address: a L{Deferred} firing
            with the accepted link (it has C{close(reason)}) or failing;
            cancelling it aborts the attempt.  When a link it gave closes,
            L{lost} must be called.
        @param linked: whether the node has an accepted link at an address
            (whoever opened it).
        @param link_count: how many accepted links the node has.
        @param close: closes the node's links at an address; returns how
            many it closed.
        @param linked_peer: whether the node has an accepted link to a
            node id (a seed whose handshake failed because it reached a
            peer already linked under another address is not redialled).
        @param own_id: this node's id (a seed that turns out to be this
            node is not redialled).
        """
        self._clock = clock
        self._attempt = attempt
        self._linked = linked
        self._link_count = link_count
        self._close = close
        self._jitter = jitter
        self._linked_peer = linked_peer
        self._own_id = own_id
        self.seeds: Set[PeerAddress] = set()
        self.dropped: Set[PeerAddress] = set()
        self._dialling: Dict[PeerAddress, Deferred] = {}
        self._links: Dict[PeerAddress, object] = {}
        self._failures: Dict[PeerAddress, int] = {}
        self._not_before: Dict[PeerAddress, float] = {}
        self._retries: Dict[PeerAddress, IDelayedCall] = {}
        self._stopped = False
        self._all_lost: List[Deferred] = []

    def busy(self, address: PeerAddress) -> bool:
        """
        @return: whether C{address} is being dialled or linked.
        """
        return address in self._dialling or address in self._links or self._linked(address)

    def keep(self, address: PeerAddress) -> bool:
        """
        Dial C{address} now and, until the node has other links, again
        with back-off whenever the attempt fails or its link closes.

        @return: C{False} (and nothing done) if C{address} is already kept,
            linked or being dialled.
        """
        if self._stopped or address in self.seeds or self.busy(address):
            return False
        self.dropped.discard(address)
        self.seeds.add(address)
        self._failures.pop(address, None)
        self._not_before.pop(address, None)
        self._dial(address)
        return True

    def dial(self, address: PeerAddress) -> None:
        """
        Try once to open a link to C{address} (membership's dials), unless
        it is linked, being dialled, failed less than its back-off ago, or
        the user disconnected from it.
        """
        if self._stopped or address in self.dropped or address in self._retries:
            return
        if self.busy(address):
            return
        if self._clock.seconds() < self._not_before.get(address, 0.0):
            return
        self._dial(address)

    def drop(self, address: PeerAddress) -> bool:
        """
        Stop dialling C{address} and close its links; membership does not
        dial it again either, until L{keep} is asked for it.

        @return: whether there was anything to stop or close.
        """
        self.dropped.add(address)
        kept = address in self.seeds
        self.seeds.discard(address)
        retry = self._retries.pop(address, None)
        if retry is not None:
            retry.cancel()
        attempt = self._dialling.pop(address, None)
        if attempt is not None:
            attempt.cancel()
        link = self._links.pop(address, None)
        if link is not None:
            link.close("disconnected by this node's user")
        closed = self._close(address)
        return kept or retry is not None or attempt is not None or link is not None or closed > 0

    def lost(self, address: PeerAddress, refused: bool) -> None:
        """
        The link this dialer opened to C{address} closed; C{refused} if the
        peer refused it (counted as a failed attempt, so a peer that keeps
        refusing is dialled less and less often).
        """
        self._links.pop(address, None)
        if self._stopped and not self._links:
            waiting, self._all_lost = self._all_lost, []
            for done in waiting:
                done.callback(None)
        failures = self._failures[address] = self._failures.get(address, 0) + 1 if refused else 0
        if failures:
            delay = backoff_delay(failures - 1, self._jitter())
            self._not_before[address] = self._clock.seconds() + delay
        if address in self.seeds and not self._stopped:
            # The closing link still counts among the node's links now:
            # decide once it is gone.
            self._schedule(address, 0, self._after_loss)

    def stop(self) -> Deferred:
        """
        Dial nothing more; abort the attempts under way.

        @return: a L{Deferred} that fires once every link this dialer
            opened has closed (the node closes them as it stops), so the
            goodbyes written on them are sent before the process ends.
        """
        self._stopped = True
        self.seeds.clear()
        for retry in self._retries.values():
            retry.cancel()
        self._retries.clear()
        for attempt in list(self._dialling.values()):
            attempt.cancel()
        self._dialling.clear()
        if not self._links:
            return succeed(None)
        done: Deferred = Deferred()
        self._all_lost.append(done)
        return done

    def _dial(self, address: PeerAddress) -> None:
        attempt = self._attempt(address)
        self._dialling[address] = attempt
        attempt.addCallbacks(
            lambda link: self._made(address, attempt, link),
            lambda failure: self._failed(address, attempt, failure),
        )

    def _made(self, address: PeerAddress, attempt: Deferred, link) -> None:
        if self._dialling.get(address) is attempt:
            del self._dialling[address]
        self._not_before.pop(address, None)
        self._links[address] = link

    def _failed(self, address: PeerAddress, attempt: Deferred, failure: Failure) -> None:
        if self._dialling.get(address) is attempt:
            del self._dialling[address]
        if failure.check(CancelledError):
            return
        failures = self._failures[address] = self._failures.get(address, 0) + 1
        delay = backoff_delay(failures - 1, self._jitter())
        self._not_before[address] = self._clock.seconds() + delay
        seed = address in self.seeds and not self._stopped
        peer_id = getattr(failure.value, "peer_id", None)
        if seed and peer_id is not None and peer_id == self._own_id:
            self._stop_seed(address, "it is this node")
            return
        if seed and peer_id is not None and self._linked_peer(peer_id):
            self._stop_seed(address, f"it reaches {short_id(peer_id)}, already linked")
            return
        self.log.info(
            "could not link to {address}: {reason}{then}",
            address=str(address), reason=printable(failure.getErrorMessage()),
            then=f"; dialling it again in {delay:.1f} s" if seed else "",
        )
        if seed:
            self._schedule(address, delay)

    def _schedule(self, address: PeerAddress, delay: float, then=None) -> None:
        retry = self._retries.pop(address, None)
        if retry is not None:
            retry.cancel()
        self._retries[address] = self._clock.callLater(delay, then or self._redial, address)

    def _after_loss(self, address: PeerAddress) -> None:
        """
        A seed's link closed: if the node has other links, the seed has
        done its job (membership knows the network and keeps the links),
        so it is not dialled again; else it is, after its back-off.
        """
        self._retries.pop(address, None)
        if address in self.seeds and self._link_count() > 0:
            self._stop_seed(address, "the node has other links now")
            return
        self._redial(address)

    def _stop_seed(self, address: PeerAddress, why: str) -> None:
        self.seeds.discard(address)
        self.log.info("stopped redialling {address}: {why}", address=str(address), why=why)

    def _redial(self, address: PeerAddress) -> None:
        """
        Dial a seed again (its attempt failed, or its link closed while
        the node had no other), unless it is linked now (the peer dialled
        this node).
        """
        self._retries.pop(address, None)
        if address not in self.seeds or address in self._dialling or address in self._links:
            return
        if self._linked(address):
            self._stop_seed(address, "it is linked")
            return
        wait = self._not_before.get(address, 0.0) - self._clock.seconds()
        if wait > 0:
            self._schedule(address, wait)
            return
        self._dial(address)
