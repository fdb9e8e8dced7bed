"""
Integration tests: the stock C{telnet} client, run on a pseudo-terminal as
a person runs it, against a real node's console.
"""

import fcntl
import os
import re
import select
import shutil
import subprocess
import termios
import time

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.processes import DEADLINE_S, NodeTestMixin, Timeout

TELNET = shutil.which("telnet")
# Lamed (D7 9C) and final mem (D7 9D) made the client send IAC BRK and open
# its telnet> prompt while binary mode was not negotiated.
HEBREW = "\u05e9\u05dc\u05d5\u05dd \u05dc \u05dd"


def _controlling_terminal() -> None:
    """
    In the child: make its standard input (the pseudo-terminal) its
    controlling terminal, so Ctrl-C typed there reaches it as SIGINT.
    """
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class TelnetTerminal:
    """
    The stock telnet client on a pseudo-terminal: what is typed goes
    through the terminal's line discipline, as from a keyboard.
    """

    def __init__(self, port: int):
        self.master, slave = os.openpty()
        self.process = subprocess.Popen(
            [TELNET, "127.0.0.1", str(port)],
            stdin=slave, stdout=slave, stderr=slave,
            preexec_fn=_controlling_terminal,
        )
        os.close(slave)
        self.shown = b""

    def type(self, keys: bytes) -> int:
        """
        Type C{keys}.

        @return: the offset in L{shown} from which their effect shows.
        """
        start = len(self.shown)
        os.write(self.master, keys)
        return start

    def wait_for(self, pattern: bytes, start: int = 0) -> None:
        """
        Wait until the terminal, from offset C{start} on, shows C{pattern}
        (a regular expression), or raise L{Timeout}.
        """
        deadline = time.monotonic() + DEADLINE_S
        while not re.search(pattern, self.shown[start:]):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Timeout(f"telnet never showed {pattern!r}:\n{self.shown[-2000:]!r}")
            ready, _, _ = select.select([self.master], [], [], remaining)
            if ready:
                try:
                    self.shown += os.read(self.master, 65536)
                except OSError:  # the client exited and closed the terminal
                    raise Timeout(f"telnet ended without {pattern!r}:\n{self.shown!r}") from None

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        os.close(self.master)


class StockTelnetTests(NodeTestMixin, SynchronousTestCase):
    """
    A person at the stock telnet client.
    """

    def setUp(self):
        if TELNET is None:
            raise SkipTest("no telnet client installed")

    def terminal(self, node) -> TelnetTerminal:
        terminal = TelnetTerminal(node.console_port)
        self.addCleanup(terminal.close)
        terminal.wait_for(rb"type /help for commands\r\n")
        return terminal

    def test_ctrl_c_hebrew_and_ctrl_d(self):
        """
        Ctrl-C clears the line and the session keeps showing output;
        Hebrew typed at the client reaches another node intact; Ctrl-D on
        an empty line ends the session.
        """
        alice = self.start("alice")
        bob = self.start("bob", "--peer", alice.peer_address)
        bob.wait_for_log(rb"link up with alice")
        bob_console = self.console(bob)
        terminal = self.terminal(alice)
        # The answer shows once the client has read everything sent before
        # it, the request to send binary included.
        terminal.wait_for(rb"bob [0-9a-f]{8} .* connected", terminal.type(b"/peers\n"))
        start = terminal.type(b"half a line\x03")
        terminal.wait_for(rb"\*\*\* line cleared\r\n", start)
        start = terminal.type(b"/status\n")
        terminal.wait_for(rb"longest_store_call_ms: ", start)
        start = terminal.type(HEBREW.encode("utf-8") + b"\n")
        shown = rb"<alice> " + re.escape(HEBREW.encode("utf-8")) + rb"\r\n"
        bob_console.wait_for(shown)
        terminal.wait_for(shown, start)
        self.assertNotIn(b"telnet>", terminal.shown)
        self.assertNotIn(b"half a line", bob_console.received)
        start = terminal.type(b"\x04")
        terminal.wait_for(rb"bye\r\n.*Connection closed", start)
        # The client ends by itself (inetutils exits 0, netkit 1).
        self.assertIn(terminal.process.wait(DEADLINE_S), (0, 1))


class HalfCloseTests(NodeTestMixin, SynchronousTestCase):
    """
    A script that writes its commands and closes its sending side, as
    C{echo /status | nc -q 1 HOST PORT} does.
    """

    def test_answers_come_before_the_close(self):
        """
        The node answers everything the script sent, then closes: the
        answers were lost when it closed at once.
        """
        import socket

        node = self.start("alice")
        sock = socket.create_connection(("127.0.0.1", node.console_port), timeout=DEADLINE_S)
        self.addCleanup(sock.close)
        sock.sendall(b"/status\n/rooms\n")
        sock.shutdown(socket.SHUT_WR)
        received = b""
        deadline = time.monotonic() + DEADLINE_S
        while time.monotonic() < deadline:
            data = sock.recv(65536)
            if not data:
                break
            received += data
        else:
            raise Timeout(f"the node never closed; got {received!r}")
        self.assertIn(b"messages: ", received)
        self.assertIn(b"#lobby", received)
