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

import time

from p2pchat.bench import processes as bench

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

        @return: the last status.
        """
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status = self.status()
            if status.get(key) == value:
                return status
            if time.monotonic() > deadline:
                raise Timeout(f"/status {key} stayed {status.get(key)!r}, not {value!r}")


class NodeProcess(bench.NodeProcess):
    """
    One node running as a real process, with test console clients.
    """

    def console(self):
        """
        @return: a new L{ConsoleClient} connected to this node.
        """
        return ConsoleClient(self.console_port)
