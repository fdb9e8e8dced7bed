# -*- test-case-name: tests.unit.test_screen -*-
"""
The input line of the terminal chat screen, as plain data (no I/O).

L{LineEditor} keeps what is being typed, the cursor and the history of
sent lines, with the keys of C{twisted.conch.recvline.HistoricRecvLine}
(left/right, home/end, backspace/delete, up/down through the history)
plus the readline keys a chat user expects (Ctrl-A/E/U/K/W).  Unlike
C{recvline}, it holds text (any script, not only ASCII bytes) and knows
how many terminal cells each character takes, so the screen can show a
window of a line longer than the terminal is wide.

L{cell_width}, L{fit} and L{wrap} measure and cut text by terminal cells.
"""

import unicodedata
from typing import List, Tuple

MAX_HISTORY_LINES = 500


def cell_width(character: str) -> int:
    """
    @return: how many terminal cells C{character} takes: 0 for a combining
        or format character, 2 for a wide (East Asian) one, else 1.
    """
    if unicodedata.combining(character) or unicodedata.category(character) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(character) in ("W", "F"):
        return 2
    return 1


def text_width(text: str) -> int:
    """
    @return: how many terminal cells C{text} takes.
    """
    return sum(cell_width(c) for c in text)


def fit(text: str, cells: int) -> str:
    """
    @return: the longest start of C{text} that fits in C{cells} cells.
    """
    used = 0
    for index, character in enumerate(text):
        used += cell_width(character)
        if used > cells:
            return text[:index]
    return text


def wrap(text: str, cells: int) -> List[str]:
    """
    @return: C{text} cut into rows of at most C{cells} cells (at least one
        row, never an empty row for a non-empty text).
    """
    cells = max(cells, 2)
    rows = []
    while True:
        row = fit(text, cells)
        if not row:
            # A wide character in a 1-cell-wide remainder: take it anyway.
            row = text[:1]
        rows.append(row)
        text = text[len(row):]
        if not text:
            return rows


class LineEditor:
    """
    The line being typed, the cursor in it and the history of sent lines.

    @ivar text: the line as it is now.
    @ivar cursor: the index in C{text} the next character goes to.
    """

    def __init__(self, max_history: int = MAX_HISTORY_LINES):
        self.text = ""
        self.cursor = 0
        self._history: List[str] = []
        self._max_history = max_history
        # Where up/down is in the history: len(history) is the line being
        # typed, kept in _draft while browsing.
        self._position = 0
        self._draft = ""

    @property
    def history(self) -> Tuple[str, ...]:
        """
        The lines sent so far, oldest first.
        """
        return tuple(self._history)

    def insert(self, characters: str) -> None:
        self.text = self.text[: self.cursor] + characters + self.text[self.cursor:]
        self.cursor += len(characters)

    def left(self) -> None:
        self.cursor = max(0, self.cursor - 1)

    def right(self) -> None:
        self.cursor = min(len(self.text), self.cursor + 1)

    def home(self) -> None:
        self.cursor = 0

    def end(self) -> None:
        self.cursor = len(self.text)

    def backspace(self) -> None:
        if self.cursor > 0:
            self.text = self.text[: self.cursor - 1] + self.text[self.cursor:]
            self.cursor -= 1

    def delete(self) -> None:
        self.text = self.text[: self.cursor] + self.text[self.cursor + 1:]

    def kill_to_start(self) -> None:
        """
        Ctrl-U: drop everything before the cursor.
        """
        self.text = self.text[self.cursor:]
        self.cursor = 0

    def kill_to_end(self) -> None:
        """
        Ctrl-K: drop everything from the cursor on.
        """
        self.text = self.text[: self.cursor]

    def kill_word(self) -> None:
        """
        Ctrl-W: drop the word before the cursor (and the spaces after it).
        """
        start = self.cursor
        while start > 0 and self.text[start - 1] == " ":
            start -= 1
        while start > 0 and self.text[start - 1] != " ":
            start -= 1
        self.text = self.text[:start] + self.text[self.cursor:]
        self.cursor = start

    def up(self) -> None:
        """
        Show the previous line of the history (the line being typed is
        kept and comes back with L{down}).
        """
        if self._position == 0:
            return
        if self._position == len(self._history):
            self._draft = self.text
        self._position -= 1
        self._show(self._history[self._position])

    def down(self) -> None:
        """
        Show the next line of the history, or the line that was being
        typed before L{up}.
        """
        if self._position >= len(self._history):
            return
        self._position += 1
        if self._position == len(self._history):
            self._show(self._draft)
        else:
            self._show(self._history[self._position])

    def _show(self, text: str) -> None:
        self.text = text
        self.cursor = len(text)

    def submit(self) -> str:
        """
        Enter: clear the line, add it to the history (unless blank or the
        same as the last one) and return it.
        """
        line = self.text
        if line.strip() and (not self._history or self._history[-1] != line):
            self._history.append(line)
            del self._history[: -self._max_history]
        self.text, self.cursor, self._draft = "", 0, ""
        self._position = len(self._history)
        return line

    def window(self, cells: int) -> Tuple[str, int]:
        """
        The part of the line to show in C{cells} terminal cells: the
        cursor always inside it, the start of the line shown when it fits.

        @return: the visible text and the cell the cursor is at within it.
        """
        cells = max(cells, 2)
        # Walk back from the cursor while the text before it fits, keeping
        # one cell free for the cursor itself.
        start, before = self.cursor, 0
        while start > 0 and before + cell_width(self.text[start - 1]) < cells:
            start -= 1
            before += cell_width(self.text[start])
        if text_width(self.text[:start]) == 0:
            start = 0
        return fit(self.text[start:], cells), text_width(self.text[start: self.cursor])
