"""
Who is who: names of authors and members from signed sources only.

L{Names} learns a name from each committed entry (the name on an author's
newest entry) and reads the others from the mesh's signed membership rows
and, on a TLS network, from certificates.  A plain-TCP hello proves nothing
and is never used to resolve, so nobody can take a name by saying it.
"""

from collections import OrderedDict
from typing import Callable, Dict, Optional, Set, Tuple

from p2pchat.chat.messages import AmbiguousPeer, UnknownPeer
from p2pchat.log.entry import Entry
from p2pchat.log.identity import is_node_id, short_id
from p2pchat.mesh.membership import Membership
from p2pchat.trust.attest import Attestations

# Authors whose entry names are kept in memory: the most recently heard up
# to this many (ids are free, so an open network can hold any number of
# authors; their names stay in the store).
MAX_NAMED_AUTHORS = 65_536


class Names:
    """
    The names this node knows.

    @ivar authors: author id -> C{(name, lamport)} of the newest entry
        heard from it, least recently heard first.
    """

    def __init__(
        self,
        membership: Membership,
        attestations: Optional[Attestations] = None,
        local: Callable[[], Set[str]] = set,
    ):
        """
        @param local: gives the ids of this node's local authors and its
            own mesh id; they are never resolved by name.
        """
        self._membership = membership
        self.attestations = attestations
        self._local = local
        self.authors: Dict[str, Tuple[str, int]] = OrderedDict()

    def heard(self, entry: Entry) -> None:
        """
        Note a committed entry of another author: it is known (so C{/msg}
        can reach it), and its name is the one on its newest entry (a late,
        older entry does not bring back an old name).
        """
        authors = self.authors
        known = authors.get(entry.author)
        if known is None or entry.lamport >= known[1]:
            authors[entry.author] = (entry.name, entry.lamport)
        authors.move_to_end(entry.author)
        if len(authors) > MAX_NAMED_AUTHORS:
            authors.popitem(last=False)

    def resolve(self, who: str) -> str:
        """
        Find a node id from a full id, a short id (a unique prefix of at
        least 4 hex digits of a known id) or a name.

        Ids win over names: nobody can capture messages meant for a short
        id by choosing that short id as a name.  A text that is one peer's
        short id and another peer's name is ambiguous.

        @raise UnknownPeer: if nothing matches.
        @raise AmbiguousPeer: if several peers match.
        """
        if is_node_id(who):
            return who
        names = {node_id: name for node_id, (name, _) in self.authors.items()}
        for member in self._membership.members():
            if member.signed:
                names[member.node_id] = member.name
            else:
                names.setdefault(member.node_id, "")
        if self.attestations is not None:
            # On a TLS network only certified names count; other known
            # nodes stay reachable by id.
            names = {node_id: "" for node_id in names}
            names.update(self.attestations.names)
        for node_id in self._local():
            # A local author is reached by its id or short id (a note to
            # yourself), never by a name: a name stays the others'.
            names[node_id] = ""
        by_id = []
        if len(who) >= 4 and all(c in "0123456789abcdef" for c in who.lower()):
            by_id = [n for n in names if n.startswith(who.lower())]
        by_name = [node_id for node_id, name in names.items() if name == who]
        matches = set(by_id) | set(by_name)
        if len(matches) == 1:
            return matches.pop()
        if len(matches) > 1:
            ids = ", ".join(sorted(short_id(node_id) for node_id in matches))
            raise AmbiguousPeer(f"several peers match {who}: {ids}; use a longer id")
        raise UnknownPeer(f"no known peer called {who}")

    def display_name(self, entry: Entry) -> str:
        """
        @return: the name to show for the author of C{entry}: on a TLS
            network the name in the author's verified certificate (the
            name the entry claims, with C{?}, when none is known yet);
            elsewhere the name the entry claims.
        """
        if self.attestations is None:
            return entry.name
        return self.attestations.names.get(entry.author) or f"{entry.name}?"

    def name_of(self, node_id: str) -> Optional[str]:
        """
        @return: the best name known for C{node_id}: certified (TLS), else
            the one in its signed membership row, else the one on its
            entries, else the one it said in its hello; or C{None}.
        """
        if self.attestations is not None and node_id in self.attestations.names:
            return self.attestations.names[node_id]
        member = self._membership.member(node_id)
        if member is not None and member.signed:
            return member.name
        if node_id in self.authors:
            return self.authors[node_id][0]
        return member.name if member is not None else None
