"""
Real C{twistd -n p2pchat} processes and console clients, for the bench.

The essentials of C{tests/processes.py}, which is not installed: the bench
must run from an installed package.  Every wait blocks until the expected
output arrives or a deadline passes: on a socket with C{select}, on a
node's output through a thread that reads it as it comes (so a node never
blocks writing its log).
"""

import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Dict, List, Optional, Sequence

import p2pchat

DEADLINE_S = 60.0
STARTED = re.compile(rb"started: peers on (\S+), console on [^:\s]+:(\d+)")
# /status is followed by this unknown command: its error line comes after
# every status line, whatever keys a build adds to /status.
END_MARKER = "/bench-end-of-reply"
END_REPLY = re.compile(rb"unknown command /bench-end-of-reply[^\n]*\n")
# Where the imported p2pchat lives: a checkout or site-packages.  Put on
# the children's PYTHONPATH so that twistd finds the same code (and its
# plugin) whether the bench runs from a checkout or an installed package.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(p2pchat.__file__)))


class Timeout(Exception):
    """
    Expected output did not arrive before the deadline.
    """


def child_environment() -> Dict[str, str]:
    """
    @return: the environment for child processes: this one, with the
        p2pchat being benchmarked first on C{PYTHONPATH}.
    """
    path = os.environ.get("PYTHONPATH")
    return dict(
        os.environ,
        PYTHONPATH=PACKAGE_ROOT + (os.pathsep + path if path else ""),
        PYTHONUNBUFFERED="1",
    )


def twistd_command() -> List[str]:
    """
    @return: the argv prefix that runs twistd from this Python environment.
    """
    beside = os.path.join(os.path.dirname(sys.executable), "twistd")
    if os.path.exists(beside):
        return [beside]
    found = shutil.which("twistd")
    if found is None:
        return [sys.executable, "-m", "twisted"]
    return [found]


def memory_kb(pid: int) -> Dict[str, int]:
    """
    @return: C{VmRSS} (resident now) and C{VmHWM} (peak resident) of
        process C{pid}, in KiB, from C{/proc/PID/status}; empty where
        there is no C{/proc}.
    """
    found = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    found[key] = int(value.split()[0])
    except OSError:
        pass
    return found


def free_ports(count: int) -> List[int]:
    """
    @return: C{count} distinct loopback TCP ports that were free a moment
        ago (held open together while choosing, so they differ).
    """
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class NodeProcess:
    """
    One node running as a real process, its output collected.

    @ivar peer_address: the C{host:port} it listens on for peers.
    @ivar console_port: its console port.
    @ivar started_s: seconds from process start to its "started:" log line.
    """

    def __init__(self, name: str, data_dir: str, *args: str, wrapper: Sequence[str] = (),
                 environment: Optional[Dict[str, str]] = None):
        """
        @param args: options for C{twistd p2pchat}, after C{--name},
            C{--data-dir} and C{--no-stdio}.
        @param wrapper: a command that runs the node, such as C{("ip",
            "netns", "exec", NAMESPACE)}.
        @param environment: the process's environment (default:
            L{child_environment}, which runs this checkout's p2pchat).
        """
        self.environment = environment
        self.name = name
        self.wrapper = list(wrapper)
        self.data_dir = data_dir
        self.args = list(args)
        self.output = b""
        self.process: Optional[subprocess.Popen] = None
        self.peer_address: Optional[str] = None
        self.console_port: Optional[int] = None
        self.started_s: Optional[float] = None
        self._spawned_at = 0.0
        self._output_changed = threading.Condition()
        self._output_closed = False
        self._reader: Optional[threading.Thread] = None

    @property
    def pid(self) -> int:
        """
        The process id.
        """
        return self.process.pid

    def spawn(self) -> "NodeProcess":
        """
        Start the process without waiting for it to be ready.
        """
        os.makedirs(self.data_dir, exist_ok=True)
        self.output = b""
        self._spawned_at = time.perf_counter()
        self._output_closed = False
        self.process = subprocess.Popen(
            self.wrapper
            + twistd_command()
            + ["-n", "--pidfile=", "p2pchat", "--name", self.name,
               "--data-dir", self.data_dir, "--no-stdio"]
            + self.args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=self.environment or child_environment(),
            cwd=self.data_dir,
        )
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()
        return self

    def wait_started(self, deadline_s: float = DEADLINE_S) -> "NodeProcess":
        """
        Wait until the node logs that it started.
        """
        match = self.wait_for_log(STARTED, deadline_s=deadline_s)
        self.started_s = time.perf_counter() - self._spawned_at
        self.peer_address = match.group(1).decode()
        self.console_port = int(match.group(2))
        return self

    def start(self) -> "NodeProcess":
        """
        Start the node and wait until it is ready.
        """
        return self.spawn().wait_started()

    def _pump(self) -> None:
        """
        Collect the node's output as it comes (in a thread), so a node that
        logs a lot never blocks on a full pipe.
        """
        stream = self.process.stdout
        while True:
            data = os.read(stream.fileno(), 65536)
            with self._output_changed:
                if data:
                    self.output += data
                else:
                    self._output_closed = True
                self._output_changed.notify_all()
            if not data:
                return

    def wait_for_log(self, pattern, after: int = 0, deadline_s: float = DEADLINE_S):
        """
        Wait until the node's output, from offset C{after}, matches
        C{pattern}.

        @return: the match.
        @raise Timeout: if it does not within C{deadline_s}, or the process
            exits first.
        """
        pattern = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        found = []

        def matched_or_closed():
            match = pattern.search(self.output, after)
            if match:
                found.append(match)
            return match is not None or self._output_closed

        with self._output_changed:
            self._output_changed.wait_for(matched_or_closed, deadline_s)
        if found:
            return found[0]
        tail = self.output[-2000:].decode(errors="replace")
        raise Timeout(f"{self.name}: no {pattern.pattern!r} in output:\n{tail}")

    def memory_kb(self) -> Dict[str, int]:
        """
        @return: L{memory_kb} of this process.
        """
        return memory_kb(self.pid)

    def stop(self, sig: int = signal.SIGTERM) -> Optional[int]:
        """
        Send C{sig} and wait for the process to exit (killing it if it
        does not within the deadline).

        @return: its exit status.
        """
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        status = self.process.wait()
        self._reader.join(DEADLINE_S)
        self.process.stdout.close()
        return status

    def console(self) -> "ConsoleClient":
        """
        @return: a new L{ConsoleClient} connected to this node.
        """
        return ConsoleClient(self.console_port)


class ConsoleClient:
    """
    A telnet-like client for the line console.
    """

    def __init__(self, port: Optional[int], host: str = "127.0.0.1", sock=None):
        """
        Connect to the console on C{host:port}, or use C{sock}, a socket
        already connected to one; wait for its greeting.
        """
        self.socket = sock or socket.create_connection((host, port), timeout=DEADLINE_S)
        self.received = b""
        self.wait_for(rb"type /help")

    def send(self, line: str) -> None:
        """
        Type one line (CRLF-terminated, as telnet sends it).
        """
        self.socket.sendall(line.encode("utf-8") + b"\r\n")

    def receive(self, timeout_s: float) -> bool:
        """
        Read what arrived, waiting at most C{timeout_s}.

        @return: whether anything arrived.
        """
        ready, _, _ = select.select([self.socket], [], [], timeout_s)
        if not ready:
            return False
        data = self.socket.recv(1 << 20)
        if not data:
            raise Timeout("console closed")
        self.received += data
        return True

    def wait_for(self, pattern, start: int = 0, deadline_s: float = DEADLINE_S):
        """
        Wait until what was received from offset C{start} on matches
        C{pattern}.

        @return: the match.
        """
        pattern = re.compile(pattern) if isinstance(pattern, bytes) else pattern
        deadline = time.monotonic() + deadline_s
        while True:
            match = pattern.search(self.received, start)
            if match:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                tail = self.received[-2000:].decode(errors="replace")
                raise Timeout(f"console: no {pattern.pattern!r} in:\n{tail}")
            self.receive(remaining)

    def command(self, line: str, until) -> str:
        """
        Send C{line} and wait for C{until}.

        @return: the text received after sending it, up to C{until}.
        """
        start = len(self.received)
        self.send(line)
        match = self.wait_for(until, start)
        return self.received[start:match.end()].decode("utf-8", "replace")

    def status(self) -> Dict[str, str]:
        """
        @return: the node's C{/status} as a dict of strings.
        """
        text = self.reply("/status")
        text = text[text.rindex("id: "):]
        return dict(
            line.split(": ", 1)
            for line in text.splitlines()
            if ": " in line and not line.startswith(("error: ", "["))
        )

    def reply(self, line: str) -> str:
        """
        Send C{line} and wait for the whole reply (however many lines),
        then forget what was received, so a long run does not grow.

        @return: the text received after sending it.
        """
        start = len(self.received)
        self.send(line)
        self.send(END_MARKER)
        match = self.wait_for(END_REPLY, start)
        text = self.received[start:match.start()].decode("utf-8", "replace")
        self.received = self.received[match.end():]
        return text

    def close(self) -> None:
        """
        Close the connection.
        """
        self.socket.close()


class NodeGroup:
    """
    The node processes of one scenario, stopped together (use as a
    context manager, so none outlives the scenario).
    """

    def __init__(self, workdir: str):
        self.workdir = workdir
        self.nodes: List[NodeProcess] = []
        self.consoles: List[ConsoleClient] = []

    def add(self, name: str, *args: str, data_dir: Optional[str] = None) -> NodeProcess:
        """
        Make (but do not start) a node listening on loopback with a
        loopback console, its data in C{data_dir} (default: a fresh
        directory named after it).
        """
        node = NodeProcess(
            name,
            data_dir or os.path.join(self.workdir, name),
            *args,
        )
        self.nodes.append(node)
        return node

    def console(self, node: NodeProcess) -> ConsoleClient:
        """
        @return: a console client of C{node}, closed with the group.
        """
        client = node.console()
        self.consoles.append(client)
        return client

    def __enter__(self) -> "NodeGroup":
        return self

    def __exit__(self, *exc_info) -> None:
        for client in self.consoles:
            client.close()
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            node.stop()


def loopback_args(port: int = 0, console_port: int = 0) -> List[str]:
    """
    @return: the options for a node listening for peers and consoles on
        loopback only.
    """
    return [
        "--port", str(port),
        "--advertise-host", "127.0.0.1",
        "--console", f"tcp:{console_port}:interface=127.0.0.1",
    ]
