"""
C{/converged}: how many members hold exactly what this node holds.

Built from the members' signed digest records (L{p2pchat.mesh.convergence}):
a member whose record names this node's digest holds the same set of
entries; one with fewer entries is behind by the difference; one with
more (or as many, under another digest) holds something this node lacks.
Members that are dead or left are not counted; a member with no record
yet, or on an older protocol, is "not reporting".
"""

from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, Optional, Tuple


@dataclass(frozen=True)
class Convergence:
    """
    One C{/converged} answer.

    @ivar members: the members counted, this node included.
    @ivar count: this node's entry count.
    @ivar digest: this node's digest.
    @ivar same: members holding exactly that (this node included).
    @ivar behind: per member with fewer entries, how many fewer.
    @ivar ahead: per member with more entries, how many more.
    @ivar differ: members with as many entries under another digest.
    @ivar silent: members with no record.
    @ivar older: of those, how many are linked to this node on a protocol
        without digest records (3 or older).
    @ivar oldest_s: age in seconds of the oldest record counted, or
        C{None} with none.
    """

    members: int
    count: int
    digest: str
    same: int
    behind: Tuple[int, ...]
    ahead: Tuple[int, ...]
    differ: int
    silent: int
    oldest_s: Optional[float]
    older: int = 0


def convergence(
    own: Tuple[int, str], members: Iterable[str], records: Dict[str, object], now_s: float,
    older: Callable[[str], bool] = lambda node_id: False,
) -> Convergence:
    """
    @param own: this node's C{(count, digest)}.
    @param members: the ids of the other members counted.
    @param records: member id -> its L{p2pchat.mesh.convergence.DigestRecord}.
    @param now_s: the wall clock, for the records' age.
    @param older: whether a member is linked on a protocol without records.
    """
    count, digest = own
    same, differ, silent, old = 1, 0, 0, 0
    behind: List[int] = []
    ahead: List[int] = []
    ages: List[float] = []
    total = 1
    for node_id in members:
        total += 1
        record = records.get(node_id)
        if record is None:
            silent += 1
            old += older(node_id)
            continue
        ages.append(max(0.0, now_s - record.at_ms / 1000))
        if record.digest == digest and record.count == count:
            same += 1
        elif record.count < count:
            behind.append(count - record.count)
        elif record.count > count:
            ahead.append(record.count - count)
        else:
            differ += 1
    return Convergence(total, count, digest, same, tuple(sorted(behind)),
                       tuple(sorted(ahead)), differ, silent, max(ages) if ages else None, old)


def _spread(values: Tuple[int, ...]) -> str:
    low, high = values[0], values[-1]
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def describe(result: Convergence) -> str:
    """
    @return: the C{/converged} line, e.g. C{converged: 12 of 15 members
        hold exactly this node's 48,213 messages (digest 3fa9c1d2); 2
        behind by 5-340 messages; 1 not reporting (protocol 3 or older)}.
    """
    noun = "message" if result.count == 1 else "messages"
    parts = [
        f"converged: {result.same} of {result.members} members hold exactly this node's "
        f"{result.count:,} {noun} (digest {result.digest[:8]})"
    ]
    if result.behind:
        spread = _spread(result.behind)
        parts.append(f"{len(result.behind)} behind by {spread} message"
                     + ("" if spread == "1" else "s"))
    if result.ahead:
        spread = _spread(result.ahead)
        parts.append(f"{len(result.ahead)} ahead by {spread} message"
                     + ("" if spread == "1" else "s"))
    if result.differ:
        parts.append(f"{result.differ} with as many messages but others")
    if result.silent:
        unknown = result.silent - result.older
        if not unknown:
            why = "protocol 3 or older"
        elif not result.older:
            why = "no record yet, or protocol 3 or older"
        else:
            why = f"{result.older} on protocol 3 or older, {unknown} with no record yet"
        parts.append(f"{result.silent} not reporting ({why})")
    if result.oldest_s is not None:
        parts.append(f"oldest record {round(result.oldest_s):,} s old")
    return "; ".join(parts)
