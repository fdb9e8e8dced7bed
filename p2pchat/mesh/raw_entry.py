"""
Entry frames handed on unparsed: the reactor thread only recognises an
C{entry} frame by how its line starts and ends, and the line is parsed
later, in a batch off the reactor thread (L{p2pchat.log.verifier}), with
exactly the verdict L{p2pchat.mesh.wire.parse_frame} would have given.
"""

import json
from typing import Any, Dict, Optional

from p2pchat.mesh import wire

# How wire.encode_frame writes an entry frame (keys sorted).
_HEAD = b'{"entry":{'
_TAIL = b',"type":"entry"}'
_SYNC_TAIL = b',"sync":true,"type":"entry"}'


def _no_constant(name: str) -> None:
    # NaN and Infinity: parse_frame refuses them; let it say so.
    raise ValueError(name)


_DECODER = json.JSONDecoder(parse_constant=_no_constant)


class RawEntry:
    """
    The entry of an C{entry} frame whose line is not parsed yet.

    @ivar line: the whole line (without its delimiter).
    @ivar sync: the frame's C{sync}, read from the line's end.
    """

    __slots__ = ("line", "sync")

    def __init__(self, line: bytes, sync: bool):
        self.line = line
        self.sync = sync

    def __len__(self) -> int:
        return len(self.line)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RawEntry):
            return NotImplemented
        return (self.line, self.sync) == (other.line, other.sync)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"<RawEntry of {len(self.line)} bytes, sync={self.sync}>"

    def load(self) -> Dict[str, Any]:
        """
        Parse the line as L{wire.parse_frame} would.

        @return: the frame's C{entry} object.
        @raise wire.FrameError: exactly when L{wire.parse_frame} refuses
            the line.
        """
        tail = _SYNC_TAIL if self.sync else _TAIL
        try:
            text = self.line[len(_HEAD) - 1 : -len(tail)].decode("utf-8")
            entry = _DECODER.decode(text)
        except (ValueError, RecursionError):
            entry = None
        if type(entry) is dict:
            # The line is {"entry":OBJECT[,"sync":true],"type":"entry"}.
            return entry
        # Not one object between that head and tail (a frame with more
        # fields, say): the whole line decides.
        return wire.parse_frame(self.line)["entry"]


def lazy_entry_frame(line: bytes) -> Optional[Dict[str, Any]]:
    """
    @return: an C{entry} frame carrying a L{RawEntry} if C{line} starts
        and ends as L{wire.encode_frame} writes an entry frame (and is not
        too long), else C{None} (parse it with L{wire.parse_frame}).  Its
        C{sync} is true only if the line ends with C{"sync":true} before
        the type: a frame written otherwise with C{sync} true is taken as
        live, whose budget is the stricter one.
    """
    if (
        len(line) > wire.MAX_LINE_BYTES
        or not line.startswith(_HEAD)
        or not line.endswith(_TAIL)
    ):
        return None
    if line.endswith(_SYNC_TAIL):
        return {"type": "entry", "entry": RawEntry(line, True), "sync": True}
    return {"type": "entry", "entry": RawEntry(line, False)}
