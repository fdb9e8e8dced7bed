"""
Real C{twistd -n p2pchat} processes and telnet-like console clients for
integration tests.

Waiting is event-driven: every wait blocks on a pipe or socket with
C{select} until the expected output arrives or a deadline passes.
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time

import p2pchat

DEADLINE_S = 30.0
REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(p2pchat.__file__)))
STARTED = re.compile(rb"started: peers on (\S+), console on 127\.0\.0\.1:(\d+)")


def twistd_command():
    """
    @return: the argv prefix that runs twistd from this Python environment.
    """
    beside = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(beside):
        return [beside]
    found = shutil.which("twistd")
    if found is None:
        raise RuntimeError("twistd is not installed")
    return [found]


class Timeout(AssertionError):
    """
    Expected output did not arrive before the deadline.
    """


class NodeProcess:
    """
    One node running as a real process.

    @ivar peer_address: the C{host:port} it listens on for peers.
    @ivar console_port: its console port.
    """

    def __init__(self, name, data_dir, *args):
        self.name = name
        self.data_dir = data_dir
        self.args = list(args)
        self.output = b""
        self.process = None

    def start(self):
        """
        Start the node and wait until it logs that it started.
        """
        env = dict(os.environ, PYTHONPATH=REPO_ROOT, PYTHONUNBUFFERED="1")
        self.output = b""
        self.process = subprocess.Popen(
            twistd_command()
            + ["-n", "--pidfile=", "p2pchat", "--name", self.name,
               "--data-dir", self.data_dir, "--no-stdio"]
            + self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=self.data_dir,
        )
        match = self.wait_for_log(STARTED)
        self.peer_address = match.group(1).decode()
        self.console_port = int(match.group(2))
        return self

    def wait_for_log(self, pattern, after=0):
        """
        Wait until the node's output, from offset C{after}, matches
        C{pattern}.

        @return: the match.
        """
        pattern = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + DEADLINE_S
        while True:
            match = pattern.search(self.output, after)
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self._read(remaining):
                raise Timeout(
                    f"{self.name}: no {pattern.pattern!r} in output:\n"
                    + self.output.decode(errors="replace")
                )

    def _read(self, timeout):
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        if not ready:
            return False
        data = os.read(self.process.stdout.fileno(), 65536)
        self.output += data
        return bool(data)

    def stop(self, sig=signal.SIGTERM):
        """
        Send C{sig} and wait for the process to exit.

        @return: its exit status.
        """
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(sig)
        deadline = time.monotonic() + DEADLINE_S
        while self.process.poll() is None and time.monotonic() < deadline:
            self._read(min(0.5, max(0.01, deadline - time.monotonic())))
        if self.process.poll() is None:
            self.process.kill()
        status = self.process.wait()
        self._drain()
        return status

    def _drain(self):
        while True:
            data = self.process.stdout.read()
            if not data:
                break
            self.output += data
        self.process.stdout.close()

    def console(self):
        """
        @return: a new L{ConsoleClient} connected to this node.
        """
        return ConsoleClient(self.console_port)


class ConsoleClient:
    """
    A telnet-like client for the line console.
    """

    def __init__(self, port):
        self.socket = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        self.received = b""
        self.wait_for(rb"type /help")

    def send(self, line):
        """
        Type one line (CRLF-terminated, as telnet sends it).
        """
        self.socket.sendall(line.encode("utf-8") + b"\r\n")

    def wait_for(self, pattern, start=0):
        """
        Wait until what was received from offset C{start} on matches
        C{pattern}.

        @return: the match.
        """
        pattern = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + DEADLINE_S
        while True:
            match = pattern.search(self.received, start)
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                received = self.received.decode(errors="replace")
                raise Timeout(f"console: no {pattern.pattern!r} in:\n{received}")
            ready, _, _ = select.select([self.socket], [], [], remaining)
            if ready:
                data = self.socket.recv(65536)
                if not data:
                    raise Timeout(f"console closed before {pattern.pattern!r}")
                self.received += data

    def command(self, line, until):
        """
        Send C{line} and wait for C{until}; return the text received after
        sending it.
        """
        start = len(self.received)
        self.send(line)
        match = self.wait_for(until, start)
        return self.received[start:match.end()].decode("utf-8")

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

    def close(self):
        """
        Close the connection.
        """
        self.socket.close()
