# -*- test-case-name: tests.unit.test_console,tests.unit.test_telnet -*-
"""
Pastes on the console: the text lines of one read, or of reads that
follow each other within L{PASTE_WINDOW_S} while pastes are joined, are
sent together; more than L{PASTE_LINES} of them as one multi-line message
(a person's paste), fewer one by one.  A raw connection (a script) does not
join pastes: each line is sent as soon as its read is handled.

L{PasteJoining} is a mixin of L{p2pchat.faces.console.ConsoleProtocol}: it
uses its C{clock}, C{say}, C{_run}, and the C{_pending}, C{_held},
C{_held_call} and C{_join_pastes} it sets up.
"""

from p2pchat.faces.words import PASTE_LINES, paste_messages

# While pastes are joined, text lines wait this long for more (a paste
# arrives in several reads: telnet sends its first line alone), at most
# this many.
PASTE_WINDOW_S = 0.05
MAX_HELD_LINES = 2_000


class PasteJoining:
    """
    Sending the text lines a console session collected.
    """

    def _hold(self) -> None:
        """
        Keep this read's text lines until no more come for
        L{PASTE_WINDOW_S} (or L{MAX_HELD_LINES} wait), so that a paste
        split over several reads is one paste.
        """
        self._held += self._pending
        self._pending = []
        if self._held_call is not None and self._held_call.active():
            self._held_call.cancel()
        if len(self._held) >= MAX_HELD_LINES:
            self._send_pending()
        else:
            self._held_call = self.clock.callLater(PASTE_WINDOW_S, self._send_pending)

    def _send_pending(self) -> None:
        """
        Send the text lines held so far in this read: each as a message,
        or, more than L{PASTE_LINES} of them, joined as one multi-line
        message (split where it would pass the size limit).
        """
        if self._held_call is not None and self._held_call.active():
            self._held_call.cancel()
        self._held_call = None
        lines = self._held + (self._pending or [])
        self._held = []
        if self._pending is not None:
            self._pending = []
        while lines and not lines[-1]:
            lines.pop()
        if not lines:
            return
        if len(lines) <= PASTE_LINES:
            for line in lines:
                if line:
                    self._say_line(line)
            return
        messages = paste_messages(lines)
        for text in messages:
            self._say_line(text)
        self.say(
            f"paste of {len(lines)} lines: sending it as "
            + ("one multi-line message" if len(messages) == 1 else f"{len(messages)} messages")
        )

    def join_pastes(self, join: bool) -> None:
        """
        Send a paste of more than L{PASTE_LINES} lines as one multi-line
        message (C{True}) or every line as a message of its own.
        """
        self._join_pastes = join

    def do_paste(self, join: bool) -> None:
        self.join_pastes(join)
        if join:
            self.say(f"a paste of more than {PASTE_LINES} lines is sent as one multi-line message")
        else:
            self.say("every line is sent as a message of its own, pasted or not")

