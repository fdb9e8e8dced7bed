"""
Integration tests: C{twistd -n p2pchat} run in a terminal (a
pseudo-terminal that is its controlling terminal) draws the chat screen;
with standard input/output on pipes it is the plain line console.
"""

import fcntl
import os
import re
import select
import signal
import socket
import struct
import subprocess
import termios
import time

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.bench.processes import child_environment
from p2pchat.faces.terminal import LOG_FILE_NAME
from tests.processes import DEADLINE_S, NodeTestMixin, Timeout, twistd_command

ROWS, COLUMNS = 24, 100
STARTED = re.compile(r"started: peers on 127\.0\.0\.1:(\d+)")


def _controlling_terminal() -> None:
    """
    In the child: a new session whose controlling terminal is its standard
    input, the pseudo-terminal, so closing the terminal hangs it up.
    """
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class ScreenNode:
    """
    A node run by C{twistd -n} on a pseudo-terminal, as from a shell.
    """

    def __init__(self, data_dir: str, *args: str):
        self.data_dir = data_dir
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
        self.process = subprocess.Popen(
            [*twistd_command(), "-n", "--pidfile=", "p2pchat", "--port", "0",
             "--console", "none", "--data-dir", data_dir, *args],
            stdin=slave, stdout=slave, stderr=slave,
            preexec_fn=_controlling_terminal,
            env=child_environment(), cwd=data_dir,
        )
        os.close(slave)
        self.shown = b""

    def type(self, keys: bytes) -> int:
        """
        @return: the offset in L{shown} from which the keys' effect shows.
        """
        start = len(self.shown)
        os.write(self.master, keys)
        return start

    def wait_for(self, pattern: bytes, start: int = 0):
        """
        Wait until the terminal, from offset C{start} on, shows C{pattern}
        (a regular expression).

        @return: the match.
        """
        deadline = time.monotonic() + DEADLINE_S
        while True:
            match = re.search(pattern, self.shown[start:])
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"the screen never showed {pattern!r}:\n{self.shown[-3000:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.shown += os.read(self.master, 65536)
                except OSError:
                    raise Timeout(f"the node ended without {pattern!r}:\n{self.shown!r}") from None

    def log(self) -> str:
        try:
            with open(os.path.join(self.data_dir, LOG_FILE_NAME), encoding="utf-8") as log:
                return log.read()
        except FileNotFoundError:
            return ""

    def wait_for_log(self, pattern):
        """
        Wait until the log file in the data dir matches C{pattern}.
        """
        deadline = time.monotonic() + DEADLINE_S
        while True:
            match = pattern.search(self.log())
            if match:
                return match
            if time.monotonic() > deadline:
                raise Timeout(f"the log never showed {pattern.pattern!r}:\n{self.log()}")
            time.sleep(0.05)

    def close_terminal(self) -> None:
        if self.master is not None:
            os.close(self.master)
            self.master = None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.close_terminal()


class ScreenProcessTests(NodeTestMixin, SynchronousTestCase):
    """
    A person at C{twistd -n p2pchat} in a terminal.
    """

    def screen(self, *args) -> ScreenNode:
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        node = ScreenNode(data_dir, *args)
        self.addCleanup(node.kill)
        node.wait_for(rb"type /help for commands")
        return node

    def test_chat_on_the_screen_and_hang_up(self):
        """
        A line typed on the screen reaches another node; a message from
        that node is drawn at the bottom of the message rows and the
        cursor goes back to the input line; the log is in the data dir,
        not on the screen; closing the terminal stops the node, which
        frees its port.
        """
        bob = self.start("bob")
        bob_console = self.console(bob)
        alice = self.screen("--name", "alice", "--peer", bob.peer_address)
        port = int(alice.wait_for_log(STARTED).group(1))
        alice.wait_for(rb" #lobby \| 1 peers alive \| 1 links")
        alice.type(b"hello from a terminal\r")
        bob_console.wait_history("<alice> hello from a terminal")
        start = len(alice.shown)
        bob_console.send("hi alice")
        alice.wait_for(
            rb"\x1b\[%d;1H\r+\n\[\d\d:\d\d:\d\d\] <bob> hi alice\x1b\[%d;3H" % (ROWS - 3, ROWS),
            start,
        )
        self.assertNotIn(b"started: peers on", alice.shown)
        self.assertEqual(alice.shown.count(b"<alice> hello from a terminal"), 1)
        alice.close_terminal()
        alice.process.wait(DEADLINE_S)
        self.assertIn("p2pchat node stopped", alice.log())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))

    def test_ctrl_d_ends_and_gives_the_terminal_back(self):
        """
        Ctrl-D on an empty input line stops the node (exit status 0) and
        the terminal echoes and edits lines again.
        """
        alice = self.screen("--name", "alice")
        start = alice.type(b"\x04")
        alice.wait_for(rb"bye", start)
        self.assertEqual(alice.process.wait(DEADLINE_S), 0)
        mode = termios.tcgetattr(alice.master)
        self.assertEqual(mode[3] & (termios.ECHO | termios.ICANON), termios.ECHO | termios.ICANON)

    def test_ctrl_c_stops_the_node(self):
        """
        Ctrl-C (SIGINT from the terminal: the screen keeps signals on)
        stops the node as anywhere else, and the terminal is given back.
        """
        alice = self.screen("--name", "alice")
        alice.type(b"\x03")
        alice.process.wait(DEADLINE_S)
        self.assertIn("p2pchat node stopped", alice.log())
        mode = termios.tcgetattr(alice.master)
        self.assertEqual(mode[3] & (termios.ECHO | termios.ICANON), termios.ECHO | termios.ICANON)

    def test_suspend_and_continue(self):
        """
        SIGTSTP (Ctrl-Z from a shell) gives the terminal back before the
        node stops; SIGCONT (C{fg}) takes it again and redraws the screen.
        """
        alice = self.screen("--name", "alice")
        pid = alice.process.pid
        os.kill(pid, signal.SIGTSTP)
        _, status = os.waitpid(pid, os.WUNTRACED)
        self.assertTrue(os.WIFSTOPPED(status))
        both = termios.ECHO | termios.ICANON
        self.assertEqual(termios.tcgetattr(alice.master)[3] & both, both)
        start = len(alice.shown)
        os.kill(pid, signal.SIGCONT)
        alice.wait_for(rb"\x1b\[2J.*> ", start)
        self.assertEqual(termios.tcgetattr(alice.master)[3] & both, 0)
        start = alice.type(b"\x04")
        alice.wait_for(rb"bye", start)
        self.assertEqual(alice.process.wait(DEADLINE_S), 0)

    def test_pipes_keep_the_line_console(self):
        """
        With standard input/output on pipes (C{--stdio}) the console is
        the plain line console: the greeting and answers as lines, no
        control sequences.
        """
        data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir)
        process = subprocess.Popen(
            [*twistd_command(), "-n", "--pidfile=", "--logfile", "node.log", "p2pchat",
             "--port", "0", "--console", "none", "--data-dir", data_dir, "--name", "alice",
             "--stdio"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=child_environment(), cwd=data_dir,
        )
        self.addCleanup(process.stdout.close)
        self.addCleanup(process.stdin.close)
        self.addCleanup(process.wait)
        self.addCleanup(lambda: process.poll() is None and process.kill())
        process.stdin.write(b"/blocked\n/quit\n")
        process.stdin.flush()
        output = b""
        deadline = time.monotonic() + DEADLINE_S
        while not output.endswith(b"bye\r\n"):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"the line console never said bye: {output!r}")
            ready, _, _ = select.select([process.stdout], [], [], remaining)
            if ready:
                output += os.read(process.stdout.fileno(), 65536)
        self.assertRegex(
            output,
            rb"\Ap2pchat: you are alice \([0-9a-f]{8}\); type /help for commands\r\n"
            rb"nobody is blocked\r\nbye\r\n\Z",
        )
        # As before, /quit on the line console leaves the node running.
        self.assertIsNone(process.poll())
        process.terminate()
        self.assertEqual(process.wait(DEADLINE_S), 0)
