"""
Gossip membership (see L{p2pchat.mesh.membership.core}): the public names
other floors use.
"""

from p2pchat.mesh.membership.core import Membership
from p2pchat.mesh.membership.rows import ALIVE, DEAD, LEFT, STATES, SUSPECT
from p2pchat.mesh.membership.types import IMembershipOutput, Member, MembershipConfig

__all__ = [
    "ALIVE",
    "DEAD",
    "IMembershipOutput",
    "LEFT",
    "Member",
    "Membership",
    "MembershipConfig",
    "STATES",
    "SUSPECT",
]
