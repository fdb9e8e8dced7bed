"""
The shape of a scenario's result.

Every result has a C{status}:

  - C{measured}: every number in it was measured in this run;
  - C{incomplete}: it was measured, but the system did not finish (some
    messages never arrived); C{reason} says what is missing;
  - C{unsupported}: this build cannot do what the scenario measures;
    C{reason} says what is missing, and the numbers are C{None};
  - C{error}: the scenario itself failed; C{reason} holds the error.

A single number that could not be measured while the rest could is
C{None}, with its reason under C{unsupported_fields}.
"""

import math
from typing import Dict, Iterable, Optional

MEASURED = "measured"
INCOMPLETE = "incomplete"
UNSUPPORTED = "unsupported"
ERROR = "error"


def measured(**fields) -> Dict[str, object]:
    """
    @return: a result whose numbers were all measured.
    """
    return dict(fields, status=MEASURED)


def unsupported(reason: str, keys: Iterable[str], **fields) -> Dict[str, object]:
    """
    @param reason: why this build cannot run the scenario; it starts with
        C{"not supported by this build: "}.
    @param keys: the result's number fields, all set to C{None}.
    @return: a result that says so, with whatever C{fields} were observed
        on the way (how long it waited, how far it got).
    """
    result: Dict[str, object] = {key: None for key in keys}
    result.update(fields)
    result.update(status=UNSUPPORTED, reason="not supported by this build: " + reason)
    return result


def mark_field_unsupported(result: Dict[str, object], key: str, reason: str) -> None:
    """
    Set one number of a measured C{result} to C{None} and record why.
    """
    result[key] = None
    result.setdefault("unsupported_fields", {})[key] = (
        "not supported by this build: " + reason
    )


def ratio(value: Optional[float], ceiling: Optional[float]) -> Optional[float]:
    """
    @return: C{value / ceiling} rounded to 3 places, or C{None} if either
        is missing or the ceiling is not positive.
    """
    if value is None or not ceiling:
        return None
    return round(value / ceiling, 3)


def percentile(values, fraction: float) -> Optional[float]:
    """
    @return: the C{fraction} percentile (nearest rank) of C{values}, or
        C{None} if there are none.
    """
    ordered = sorted(values)
    if not ordered:
        return None
    rank = min(len(ordered), max(1, math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]
