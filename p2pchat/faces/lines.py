# -*- test-case-name: tests.unit.test_lines -*-
"""
Cleaning one typed console line before it is read as a command or a
message (pure functions, no I/O).

A terminal or a telnet client can put control characters in front of what
the user meant: C{^L} typed to clear the screen before C{/peers}, a stray
C{^D} or C{^C} byte.  Such a character must not turn a command into a
public message, so leading control characters are dropped before the line
is read; a line that is nothing but control characters is not a message.
"""

import unicodedata


def _is_control(character: str) -> bool:
    """
    @return: whether C{character} is a control character (Unicode category
        C{Cc}: C0, DEL and C1) other than TAB.
    """
    return character != "\t" and unicodedata.category(character) == "Cc"


def strip_leading_controls(text: str) -> str:
    """
    @return: C{text} without the control characters (any in Unicode
        category C{Cc} except TAB) at its start; C{""} if it has nothing
        else.
    """
    for index, character in enumerate(text):
        if not _is_control(character):
            return text[index:]
    return ""


def without_line_ending(line: bytes) -> bytes:
    """
    @param line: one line without its C{LF}.
    @return: C{line} without the C{CR} of a C{CRLF} ending, so a line's
        length is the length of its text however it ended.
    """
    return line[:-1] if line.endswith(b"\r") else line
