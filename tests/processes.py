"""
Real C{twistd -n p2pchat} processes and telnet-like console clients for
integration tests.

The processes and clients are the benchmark's (L{p2pchat.bench.processes}):
output is collected in a thread and every wait is event-driven, blocking on
a pipe or a socket until the expected output arrives or a deadline passes.
This module adds what the tests need on top: clients that keep everything
they received (tests search the whole transcript) and wait for a
C{/status} value.
"""

import io
import os
import signal
import time

from p2pchat.bench import processes as bench
from p2pchat.trust import ca

DEADLINE_S = 30.0
REPO_ROOT = bench.PACKAGE_ROOT
Timeout = bench.Timeout
twistd_command = bench.twistd_command


class ConsoleClient(bench.ConsoleClient):
    """
    A console client that keeps the whole transcript in C{received}.
    """

    def status(self):
        """
        @return: the node's /status as a dict.
        """
        text = self.command("/status", rb"longest_store_call_ms: [\d.]+\r\n")
        text = text[text.rindex("id: "):]
        return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)

    def wait_status(self, key, value):
        """
        Ask for /status until C{key} shows C{value} (each ask waits for the
        node's answer) or the deadline passes.

        @param value: the value, or a predicate it must meet.
        @return: the last status.
        """
        met = value if callable(value) else (lambda shown: shown == value)
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status = self.status()
            if key in status and met(status[key]):
                return status
            if time.monotonic() > deadline:
                raise Timeout(f"/status {key} stayed {status.get(key)!r}, not {value!r}")

    def wait_history(self, text):
        """
        Ask for /history until it shows C{text} or the deadline passes (an
        event wait, not a speed bound).
        """
        deadline = time.monotonic() + DEADLINE_S
        while text not in self.reply("/history"):
            if time.monotonic() > deadline:
                raise Timeout(f"/history never showed {text!r}")


class NodeProcess(bench.NodeProcess):
    """
    One node running as a real process, with test console clients.
    """

    def console(self):
        """
        @return: a new L{ConsoleClient} connected to this node.
        """
        return ConsoleClient(self.console_port)


class NodeTestMixin:
    """
    For a trial test case: start real nodes on free loopback ports, each
    killed at the end of the test, and open consoles closed at the end.
    """

    def start(self, name, *args, data_dir=None, port="0"):
        """
        Start a node called C{name} with C{args}, in a new temporary data
        dir (or C{data_dir}, to restart one), and wait until it is up.
        """
        if data_dir is None:
            data_dir = os.path.abspath(self.mktemp())
        os.makedirs(data_dir, exist_ok=True)
        node = NodeProcess(name, data_dir, "--port", port, "--console",
                           "tcp:0:interface=127.0.0.1", *args)
        node.start()
        self.addCleanup(node.stop, signal.SIGKILL)
        return node

    def console(self, node):
        """
        @return: a console client for C{node}, closed at the end.
        """
        console = node.console()
        self.addCleanup(console.close)
        return console



def make_ca(test, *names):
    """
    Make a CA with C{p2pchat-ca} in a new temporary directory of C{test}
    and issue a certificate for each of C{names}.

    @return: the directory.
    """
    directory = os.path.abspath(test.mktemp())
    quiet = io.StringIO()
    test.assertEqual(ca.main(["init", directory], stdout=quiet, stderr=quiet), 0)
    for name in names:
        test.assertEqual(ca.main(["issue", directory, name], stdout=quiet, stderr=quiet), 0)
    return directory


def tls_args(directory, cert_name):
    """
    @return: the options that run a node with the certificate C{directory}
        issued to C{cert_name}, and that directory's CA.
    """
    return (
        "--tls-cert", os.path.join(directory, f"{cert_name}.pem"),
        "--tls-key", os.path.join(directory, f"{cert_name}.key"),
        "--tls-ca", os.path.join(directory, "ca.pem"),
    )
