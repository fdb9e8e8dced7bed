# -*- test-case-name: tests.unit.test_terminal -*-
"""
Putting the chat screen on the terminal C{twistd -n p2pchat} runs in.

L{screen_choice} decides (from the command line) whether the screen is
drawn and where the log goes meanwhile; L{log_beside_screen} points
twistd's log there; L{TerminalConsole} switches the terminal to
character-at-a-time input, runs a L{p2pchat.faces.screen.ChatScreen} on standard input/output
through C{twisted.conch.insults}, follows the window size, and gives the
terminal back as it found it when the node stops.

L{StdioConsoleService} is the node's service for the console on standard
input/output: the screen, or (not drawn) the plain line console, byte for
byte as before.
"""

import atexit
import os
import signal
import sys
import termios
import threading
from typing import IO, Any, Callable, Dict, Optional, Set, Tuple

from twisted.application.service import Service
from twisted.internet.error import ReactorNotRunning
from twisted.logger import (
    ILogObserver,
    LogLevel,
    formatEvent,
    globalLogPublisher,
    textFileLogObserver,
)
from zope.interface import implementer

LOG_FILE_NAME = "p2pchat.log"


def screen_choice(
    stdio: bool, stdin, stdout, twistd_options, data_dir: str
) -> Tuple[bool, Optional[str]]:
    """
    Whether to draw the chat screen, and where the log goes meanwhile.

    The screen is drawn when the console is on standard input/output, both
    are terminals, and C{twistd} runs in the foreground (C{-n}) without
    C{--logfile -} or C{--logger}, which put the log on the terminal.  The
    log then goes to C{--logfile}, syslog, or else C{p2pchat.log} in the
    data directory (twistd's default, standard output, would draw over the
    screen).

    @param stdin: standard input (anything with C{isatty}).
    @param stdout: standard output.
    @param twistd_options: twistd's own options (C{Options.parent}), or
        C{None} when not run by twistd: then no screen.
    @return: C{(draw the screen, log file to use or None for twistd's)}.
    """
    if not stdio or twistd_options is None or not (_tty(stdin) and _tty(stdout)):
        return False, None
    if not twistd_options.get("nodaemon") or twistd_options.get("logger"):
        return False, None
    logfile = twistd_options.get("logfile")
    if logfile == "-":
        return False, None
    if logfile or twistd_options.get("syslog"):
        return True, None
    return True, os.path.join(data_dir, LOG_FILE_NAME)


def _tty(stream) -> bool:
    try:
        return bool(stream is not None and stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def log_beside_screen(
    application, observer_for: Callable[[IO[Any]], ILogObserver], path: Optional[str]
) -> bool:
    """
    Make twistd log to C{path} (through C{observer_for(stream)}, which
    writes the node's log format) instead of the terminal,
    if a path is given and twistd has no observer yet (see
    L{p2pchat.ops.logs}: twistd reads the application's C{ILogObserver}
    component when it starts logging, after the service is attached).
    Until the screen is drawn, errors also go to the terminal, so a node
    that cannot start says why where it was started.

    @return: whether the log goes to C{path}; not if it cannot be opened
        (then twistd logs to the terminal and says why the node stopped).
    """
    get_component = getattr(application, "getComponent", None)
    if path is None or get_component is None or get_component(ILogObserver, None) is not None:
        return False
    try:
        os.makedirs(os.path.dirname(path) or ".", mode=0o700, exist_ok=True)
        stream = open(path, "a", encoding="utf-8", buffering=1)
    except OSError:
        return False
    to_file = observer_for(stream)
    terminal = textFileLogObserver(sys.stderr)

    @implementer(ILogObserver)
    def observer(event) -> None:
        to_file(event)
        if not TerminalConsole.drawn and event.get("log_level", LogLevel.info) >= LogLevel.error:
            terminal(event)

    application.setComponent(ILogObserver, observer)
    return True


class TerminalConsole:
    """
    The chat screen on this process's terminal (standard input/output).

    @ivar screen: the L{p2pchat.faces.screen.ChatScreen}, once started.
    @cvar drawn: the consoles whose screen is on the terminal now.
    """

    drawn: Set["TerminalConsole"] = set()

    def __init__(self, chat, reactor, fd_in: int = 0, fd_out: int = 1):
        self._chat = chat
        self._reactor = reactor
        self._fd_in, self._fd_out = fd_in, fd_out
        self._saved_mode = None
        self._previous: Dict[int, object] = {}
        self._io = None
        self.screen = None

    def start(self) -> None:
        """
        Switch the terminal to character-at-a-time input without echo
        (Ctrl-C still interrupts), draw the screen and show warnings of
        the log on it.
        """
        from twisted.conch.insults.insults import ServerProtocol
        from twisted.internet import stdio

        from p2pchat.faces.screen import ChatScreen

        self._saved_mode = termios.tcgetattr(self._fd_in)
        self._character_mode()
        self._reactor.addSystemEventTrigger("after", "shutdown", self.stop)
        atexit.register(self.stop)
        terminal = ServerProtocol(ChatScreen, self._chat, self._reactor, self.end_node)
        self._io = stdio.StandardIO(
            terminal, stdin=self._fd_in, stdout=self._fd_out, reactor=self._reactor
        )
        self.screen = terminal.terminalProtocol
        self._reactor.addSystemEventTrigger("before", "shutdown", self.stop_updates)
        self._resized()
        if threading.current_thread() is threading.main_thread():
            for signum, handler in (
                (signal.SIGWINCH, self._on_winch),
                (signal.SIGTSTP, self._on_suspend),
                (signal.SIGCONT, self._on_continue),
            ):
                self._previous[signum] = signal.signal(signum, handler)
        globalLogPublisher.addObserver(self._observe)
        TerminalConsole.drawn.add(self)

    def _character_mode(self) -> None:
        mode = termios.tcgetattr(self._fd_in)
        mode[3] &= ~(termios.ECHO | termios.ICANON)
        mode[6][termios.VMIN], mode[6][termios.VTIME] = 1, 0
        termios.tcsetattr(self._fd_in, termios.TCSANOW, mode)

    def _give_back(self) -> None:
        """
        The terminal as it was: whole-screen scrolling, the cursor on the
        last row and one line down, echo and line editing on.  Written
        directly: the reactor may not write what StandardIO holds anymore.
        """
        try:
            if self.screen is not None:
                os.write(self._fd_out, b"\x1b[r\x1b[%d;1H\r\n" % (self.screen.height,))
            if self._saved_mode is not None:
                termios.tcsetattr(self._fd_in, termios.TCSADRAIN, self._saved_mode)
        except (OSError, termios.error):
            pass  # the terminal is gone

    def _on_suspend(self, signum, frame) -> None:
        """
        Ctrl-Z: give the terminal back, then stop as SIGTSTP would.
        """
        self._give_back()
        os.kill(os.getpid(), signal.SIGSTOP)

    def _on_continue(self, signum, frame) -> None:
        self._reactor.callFromThread(self._continued)

    def _continued(self) -> None:
        """
        Back in the foreground (C{fg}): take the terminal again, redraw.
        """
        if self.screen is None:
            return
        try:
            self._character_mode()
        except termios.error:
            return
        self._resized()

    def stop_updates(self) -> None:
        """
        The node is stopping: the screen stops reading its status.
        """
        if self.screen is not None:
            self.screen.stop_updates()

    def _on_winch(self, signum, frame) -> None:
        self._reactor.callFromThread(self._resized)

    def _resized(self) -> None:
        try:
            size = os.get_terminal_size(self._fd_out)
        except OSError:
            return
        if self.screen is not None and size.columns and size.lines:
            self.screen.terminalSize(size.columns, size.lines)

    def _observe(self, event) -> None:
        """
        A log event: show a warning (or worse) on the screen's dim line.
        """
        level = event.get("log_level")
        if level is None or level < LogLevel.warn or self.screen is None:
            return
        text = formatEvent(event)
        if threading.current_thread() is threading.main_thread():
            self.screen.warning(text)
        else:
            self._reactor.callFromThread(self._warn, text)

    def _warn(self, text: str) -> None:
        if self.screen is not None:
            self.screen.warning(text)

    def end_node(self) -> None:
        try:
            self._reactor.stop()
        except ReactorNotRunning:
            pass

    def stop(self) -> None:
        """
        Give the terminal back: normal scrolling, the cursor below the
        screen, echo and line editing on again.
        """
        globalLogPublisher.removeObserver(self._observe)
        TerminalConsole.drawn.discard(self)
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}
        self._give_back()
        self.screen = None
        self._saved_mode = None


class StdioConsoleService(Service):
    """
    The console on standard input/output, started last and stopped first
    among the node's services: the chat screen (a L{TerminalConsole}) or
    the plain line console.

    @ivar terminal: the L{TerminalConsole}, once started, or C{None}.
    """

    def __init__(
        self,
        screen: bool,
        chat: Callable[[], object],
        reactor: Callable[[], object],
        line_console: Callable[[object], object],
    ):
        """
        @param screen: draw the chat screen (else the line console).
        @param chat: returns the chat API (once the node has started).
        @param reactor: returns the reactor.
        @param line_console: builds the line console's protocol for a chat.
        """
        self._screen = screen
        self._chat = chat
        self._reactor = reactor
        self._line_console = line_console
        self.terminal: Optional[TerminalConsole] = None

    def startService(self) -> None:
        chat, reactor = self._chat(), self._reactor()
        if self._screen:
            self.terminal = TerminalConsole(chat, reactor)
            self.terminal.start()
        else:
            from twisted.internet import stdio

            stdio.StandardIO(self._line_console(chat), reactor=reactor)
        super().startService()

    def stopService(self):
        if self.terminal is not None:
            self.terminal.stop_updates()
        return super().stopService()
