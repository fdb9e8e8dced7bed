# -*- test-case-name: tests.unit.test_membership_parts,tests.unit.test_membership -*-
"""
The active view (HyParView's): which links to keep, dial and drop.

A node keeps about C{max_links} links, connecting to random alive
members when below (proven members first, at most C{connects_per_tick}
per tick, each address backed off while its attempts fail) and dropping
one random settled link when above C{max_links + link_slack}.
"""

from dataclasses import dataclass
from random import Random
from typing import Dict, Optional, Set

from p2pchat.mesh import wire
from p2pchat.mesh.membership.admission import Admission
from p2pchat.mesh.membership.dissemination import Dissemination, Link
from p2pchat.mesh.membership.own import OwnRow
from p2pchat.mesh.membership.rows import ALIVE
from p2pchat.mesh.membership.table import MemberTable, Record
from p2pchat.mesh.membership.types import IMembershipOutput, MembershipConfig

#: The back-off after failed attempts to one address doubles this many
#: times at most.
MAX_RETRY_DOUBLINGS = 4


@dataclass
class Attempt:
    at: float
    failures: int = 0
    #: Whether a dial may still be under way (else only a back-off).
    pending: bool = True


class ActiveView:
    """
    Dials and drops links to keep the active view's size.
    """

    def __init__(
        self,
        own: OwnRow,
        table: MemberTable,
        links: Dissemination,
        admission: Admission,
        output: IMembershipOutput,
        config: MembershipConfig,
        rng: Random,
    ):
        self._own = own
        self._table = table
        self._links = links
        self._admission = admission
        self._output = output
        self._config = config
        self._rng = rng
        self._attempts: Dict[str, Attempt] = {}
        self._dropping: Set[str] = set()

    def linked(self, record: Optional[Record], address: Optional[str]) -> None:
        """
        A link came up to C{address} (from its hello) and, if known, to
        C{record}'s member: its addresses need no back-off.
        """
        if record is not None:
            self._forget_attempt(record.address)
        self._forget_attempt(address)

    def unlinked(self, peer_id: str, link: Link, record: Optional[Record], now: float) -> bool:
        """
        The last link to C{peer_id} closed (C{link} was its gossip state).

        @return: whether its member is not to be suspected for it: this
            node dropped it on purpose, or the member refused it at once
            (it answered the handshake, so it is alive).
        """
        refused = (
            link.outbound and record is not None
            and now - link.since < self._config.connect_retry_s
        )
        if refused:
            # Refused or closed at once (a full node takes the handshake,
            # then says no): back off as after a failed attempt, or we
            # would redial it every tick.
            self._failed_attempt(record.address, now, pending=False)
        dropped = peer_id in self._dropping
        self._dropping.discard(peer_id)
        return dropped or refused

    def keep(self, now: float) -> None:
        """
        Connect to random alive members while below C{max_links} (counting
        attempts still pending); drop one random link while above
        C{max_links + link_slack}.
        """
        config = self._config
        links = self._links.links
        self._dropping &= set(links)
        pending = sum(
            1 for attempt in self._attempts.values()
            if attempt.pending and now < attempt.at + config.connect_retry_s
        )
        wanted = min(config.max_links - len(links) - pending, config.connects_per_tick)
        if wanted > 0:
            candidates = [
                record for record in self._table.records.values()
                if record.state == ALIVE
                and record.advertised
                and record.address is not None
                and record.address != self._own.address
                and not record.links
                and self._may_try(record.address, now)
            ]
            # Proven members first: addresses only gossip vouches for
            # (perhaps fakes) must not eat the connection attempts.
            for record in self._admission.choose(candidates, wanted, self._rng):
                self._failed_attempt(record.address, now)
                self._output.connect(record.address)
        # Count connections, not peers: two links to one peer (both ends
        # dialled at once) are two of the links /status shows.
        connections = self._links.connections(excluding=self._dropping)
        excess = connections - config.max_links - config.link_slack
        if excess > 0:
            settled = [
                peer_id for peer_id, link in links.items()
                if peer_id not in self._dropping
                and now - link.since >= config.gossip_interval_s * 5
            ]
            # A peer linked twice goes first: closing it frees two links.
            doubled = [peer_id for peer_id in settled if links[peer_id].count > 1]
            if settled:
                peer_id = self._rng.choice(sorted(doubled or settled))
                self._dropping.add(peer_id)
                # Said first, so the peer does not take the loss for a
                # failure (frames go out before the link closes).
                self._output.send(peer_id, wire.unlink())
                self._output.disconnect(
                    peer_id, f"more than {config.max_links + config.link_slack} links"
                )
        for address, attempt in list(self._attempts.items()):
            if now >= attempt.at + config.connect_retry_s * 2**MAX_RETRY_DOUBLINGS:
                del self._attempts[address]

    def _may_try(self, address: str, now: float) -> bool:
        attempt = self._attempts.get(address)
        if attempt is None:
            return True
        wait_s = self._config.connect_retry_s * 2 ** min(attempt.failures, MAX_RETRY_DOUBLINGS)
        return now >= attempt.at + wait_s

    def _failed_attempt(self, address: Optional[str], now: float, pending: bool = True) -> None:
        """
        Note an attempt to reach C{address} (it counts as failed until a
        link to it lasts; see L{unlinked}).
        """
        if address is None:
            return
        attempt = self._attempts.get(address)
        if attempt is None:
            self._attempts[address] = Attempt(now, pending=pending)
        else:
            attempt.at = now
            attempt.failures += 1
            attempt.pending = pending

    def _forget_attempt(self, address: Optional[str]) -> None:
        if address is not None:
            self._attempts.pop(address, None)
