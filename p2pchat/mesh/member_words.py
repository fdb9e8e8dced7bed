"""
A member's change of state in words, for the log and the consoles: the one
place they are worded.
"""

from typing import Optional

from p2pchat.mesh.membership.rows import ALIVE, DEAD, LEFT, SUSPECT

_WORDS = {SUSPECT: "seems down", DEAD: "is down", LEFT: "left"}


def change_words(old_state: Optional[str], state: str) -> Optional[str]:
    """
    @param old_state: the state before, C{None} for a member first heard of.
    @return: the change as a verb phrase (C{"joined"}, C{"is back"},
        C{"seems down"}, C{"is down"}, C{"left"}), or C{None} if the state
        did not change or a member is first heard of in a state other than
        alive (nobody saw it join).
    """
    if old_state == state:
        return None
    if state == ALIVE:
        return "joined" if old_state is None else "is back"
    if old_state is None:
        return None
    return _WORDS.get(state, f"is {state}")


def log_words(old_state: Optional[str], state: str) -> str:
    """
    @return: the change as a verb phrase for the log, which also tells of
        members first heard of in another state than alive.
    """
    words = change_words(old_state, state)
    if words is not None:
        return words
    if old_state is None:
        return f"is known, {_WORDS.get(state, state)}"
    return f"is still {state}"
