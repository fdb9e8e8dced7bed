"""
Tests for L{p2pchat.faces.terminal}: when the chat screen is drawn and
where the log goes meanwhile.
"""

import io
import os
import sys

from twisted.application.service import Application
from twisted.logger import ILogObserver, Logger, textFileLogObserver
from twisted.trial.unittest import SynchronousTestCase

from p2pchat.faces.terminal import (
    LOG_FILE_NAME,
    TerminalConsole,
    log_beside_screen,
    screen_choice,
)


class _Stream(io.StringIO):
    def __init__(self, tty):
        super().__init__()
        self._tty = tty

    def isatty(self):
        return self._tty


TTY, PIPE = _Stream(True), _Stream(False)


class ScreenChoiceTests(SynchronousTestCase):
    """
    L{screen_choice}: the screen needs a terminal on both ends, twistd in
    the foreground, and a log that does not go to the terminal.
    """

    def choose(self, stdio=True, stdin=TTY, stdout=TTY, **twistd):
        options = {"nodaemon": True, "logfile": None, "logger": None, "syslog": False}
        options.update(twistd)
        return screen_choice(stdio, stdin, stdout, options, "/data")

    def test_foreground_terminal_logs_to_the_data_dir(self):
        self.assertEqual(self.choose(), (True, os.path.join("/data", LOG_FILE_NAME)))

    def test_given_log_destination_is_kept(self):
        self.assertEqual(self.choose(logfile="/var/log/p2pchat.log"), (True, None))
        self.assertEqual(self.choose(syslog=True), (True, None))

    def test_plain_console(self):
        """
        A pipe on either end, no console, a daemon, or a log the user put
        on standard output: the plain line console (or none), as before.
        """
        plain = (False, None)
        self.assertEqual(self.choose(stdin=PIPE), plain)
        self.assertEqual(self.choose(stdout=PIPE), plain)
        self.assertEqual(self.choose(stdio=False), plain)
        self.assertEqual(self.choose(nodaemon=False), plain)
        self.assertEqual(self.choose(logfile="-"), plain)
        self.assertEqual(self.choose(logger=object()), plain)
        self.assertEqual(screen_choice(True, TTY, TTY, None, "/data"), plain)


class LogBesideScreenTests(SynchronousTestCase):
    """
    L{log_beside_screen} gives twistd's application a file observer.
    """

    def test_sets_a_file_observer(self):
        path = os.path.join(self.mktemp(), "p2pchat.log")
        application = Application("test")
        self.assertTrue(log_beside_screen(application, textFileLogObserver, path))
        observer = application.getComponent(ILogObserver)
        Logger(namespace="test", observer=observer).warn("written {what}", what="here")
        with open(path, encoding="utf-8") as log:
            self.assertIn("[test#warn] written here", log.read())
        self.assertEqual(os.stat(os.path.dirname(path)).st_mode & 0o777, 0o700)

    def test_errors_reach_the_terminal_until_the_screen_is_drawn(self):
        """
        A node that cannot start says so on the terminal it was started
        from; once the screen is drawn, errors go to the log file only.
        """
        terminal = io.StringIO()
        self.patch(sys, "stderr", terminal)
        path = os.path.join(self.mktemp(), "p2pchat.log")
        application = Application("test")
        log_beside_screen(application, textFileLogObserver, path)
        log = Logger(namespace="test", observer=application.getComponent(ILogObserver))
        log.info("started fine")
        log.critical("p2pchat cannot start: {why}", why="no disk")
        self.assertNotIn("started fine", terminal.getvalue())
        self.assertIn("[test#critical] p2pchat cannot start: no disk", terminal.getvalue())
        drawn = object()
        TerminalConsole.drawn.add(drawn)
        self.addCleanup(TerminalConsole.drawn.discard, drawn)
        log.error("while the screen is up")
        self.assertNotIn("while the screen is up", terminal.getvalue())
        with open(path, encoding="utf-8") as written:
            self.assertIn("while the screen is up", written.read())

    def test_unusable_path_leaves_the_log_to_twistd(self):
        blocker = self.mktemp()
        open(blocker, "w").close()
        application = Application("test")
        path = os.path.join(blocker, "x", "log")
        self.assertFalse(log_beside_screen(application, textFileLogObserver, path))
        self.assertIsNone(application.getComponent(ILogObserver, None))

    def test_keeps_a_chosen_observer(self):
        application = Application("test")
        chosen = [].append
        application.setComponent(ILogObserver, chosen)
        self.assertFalse(log_beside_screen(application, textFileLogObserver, self.mktemp()))
        self.assertIs(application.getComponent(ILogObserver), chosen)

    def test_no_path_changes_nothing(self):
        application = Application("test")
        self.assertFalse(log_beside_screen(application, textFileLogObserver, None))
        self.assertIsNone(application.getComponent(ILogObserver, None))
