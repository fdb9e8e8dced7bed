# -*- test-case-name: tests.unit.test_membership,tests.unit.test_membership_attacks -*-
"""
The types other modules see of L{p2pchat.mesh.membership}: what a node knows
about a member, what membership asks the node to do, and its parameters.
"""

from dataclasses import dataclass
from typing import Optional

from zope.interface import Interface


@dataclass
class Member:
    """
    What this node knows about another node, as C{/peers} shows it.

    @ivar node_id: the member's id.
    @ivar name: its display name.
    @ivar address: where it accepts links (C{host:port}), or C{None} for
        an outbound-only member (reachable through a relay).
    @ivar incarnation: its incarnation number.
    @ivar state: C{alive}, C{suspect}, C{dead} or C{left}.
    @ivar linked: whether this node has a link to it.
    @ivar last_heard: clock time it last showed a sign of life (its
        heartbeat or incarnation advanced, or it sent us a frame).
    @ivar signed: whether name and address come from the member's own
        signed row (not only from a link's hello, which proves nothing).
    """

    node_id: str
    name: str
    address: Optional[str]
    incarnation: int
    state: str
    linked: bool
    last_heard: float
    signed: bool = False


class IMembershipOutput(Interface):
    """
    What L{Membership} asks the node to do.
    """

    def send(peer_id: str, frame: dict) -> None:
        """
        Send C{frame} on our link to C{peer_id} (there is one).
        """

    def ready(peer_id: str) -> bool:
        """
        @return: whether our link to C{peer_id} takes more gossip now
            (its transport has not paused our producer); membership keeps
            the rows for later otherwise.
        """

    def connect(address: str) -> None:
        """
        Open an outbound link to C{address} (C{host:port}).
        """

    def disconnect(peer_id: str, reason: str) -> None:
        """
        Close our link(s) to C{peer_id}, logging C{reason}.
        """

    def member_changed(member: Member, old_state: Optional[str]) -> None:
        """
        C{member} was learned (C{old_state} is C{None}) or changed state.
        """


@dataclass(frozen=True)
class MembershipConfig:
    """
    Membership parameters.

    @ivar max_links: the active view: how many links a node keeps.
    @ivar failure_timeout_s: how long a member may stay suspect before it
        is declared dead, when no other node confirms the suspicion; down
        to 5/8 of it as confirmations arrive (Lifeguard's suspicion; see
        L{p2pchat.mesh.membership.detector}).
    @ivar gossip_interval_s: how often the node calls L{Membership.tick}.
    @ivar heartbeat_interval_s: the heartbeat budget's unit: a link may
        bring about one heartbeat-only row per member per interval.  (This
        node's heartbeat does not advance: rows change only when a
        member's incarnation, state, name or address does.)
    @ivar tombstone_s: dead and left members are kept this long.
    @ivar hidden: start hidden (not advertised in gossip).
    @ivar link_slack: inbound links may take a node this far above
        C{max_links} before it drops extras.
    @ivar sync_interval_s: how often the next L{SYNC_ROWS} rows of the
        table (in turn) are pushed again to one random link
        (anti-entropy).
    @ivar connect_retry_s: the least time between two connection attempts
        to one address; it doubles (up to 16 times) while they fail.
    @ivar connects_per_tick: new connection attempts per tick, at most.
    @ivar max_members: members (tombstones included) this node keeps.
    @ivar probe_interval_s: how often a linked peer is probed (SWIM's
        protocol period).
    @ivar probe_timeout_s: how long a probe (then the probes made by
        others on this node's behalf) may go unanswered.
    @ivar indirect_probes: how many other linked peers are asked to probe
        a member that did not answer (SWIM's k).
    @ivar retransmit_mult: a changed row is sent at most this many times
        ceil(log2(N + 1)) by each node, N the members it knows
        (memberlist's retransmit multiplier).
    """

    max_links: int = 5
    failure_timeout_s: float = 4.0
    gossip_interval_s: float = 0.2
    heartbeat_interval_s: float = 1.0
    tombstone_s: float = 300.0
    hidden: bool = False
    link_slack: int = 2
    sync_interval_s: float = 30.0
    connect_retry_s: float = 5.0
    connects_per_tick: int = 1
    max_members: int = 10_000
    probe_interval_s: float = 0.5
    probe_timeout_s: float = 0.4
    indirect_probes: int = 3
    retransmit_mult: int = 4


#: Rows of the table pushed again to one link every C{sync_interval_s}.
SYNC_ROWS = 32
