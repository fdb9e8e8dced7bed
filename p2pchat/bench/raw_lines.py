"""
raw_line_throughput: the transport ceiling.

Two child processes over loopback TCP: a receiver, a plain Twisted
L{LineReceiver} that counts lines, and a sender that writes 120-byte
lines as fast as the transport takes them (a pull producer writing
256 KiB at a time).  The receiver times from the first byte to the last
line and prints the result as JSON.

Run as C{python -m p2pchat.bench.raw_lines receive} and
C{python -m p2pchat.bench.raw_lines send PORT LINES}; L{run} starts both.
"""

import json
import subprocess
import sys
import time

from p2pchat.bench.processes import child_environment
from p2pchat.bench.results import measured

LINE_BYTES = 120
CHUNK_BYTES = 256 * 1024


def _line() -> bytes:
    return b"x" * (LINE_BYTES - 1) + b"\n"


def receive() -> None:
    """
    Listen on a free loopback port (printed as the first line of output),
    count the lines of one connection, and print C{{"lines", "seconds"}}
    when it closes.
    """
    from twisted.internet import protocol, reactor
    from twisted.protocols.basic import LineReceiver

    class Counter(LineReceiver):
        delimiter = b"\n"
        lines = 0
        first = None

        def dataReceived(self, data):
            if self.first is None:
                self.first = time.perf_counter()
            LineReceiver.dataReceived(self, data)

        def lineReceived(self, line):
            self.lines += 1

        def connectionLost(self, reason=None):
            elapsed = time.perf_counter() - (self.first or time.perf_counter())
            print(json.dumps({"lines": self.lines, "seconds": elapsed}), flush=True)
            reactor.stop()

    port = reactor.listenTCP(
        0, protocol.Factory.forProtocol(Counter), interface="127.0.0.1"
    )
    print(port.getHost().port, flush=True)
    reactor.run()


def send(port: int, lines: int) -> None:
    """
    Connect to the receiver and write C{lines} 120-byte lines through a
    pull producer, then close.
    """
    from twisted.internet import protocol, reactor
    from twisted.internet.interfaces import IPullProducer
    from zope.interface import implementer

    per_chunk = CHUNK_BYTES // LINE_BYTES
    chunk = _line() * per_chunk

    @implementer(IPullProducer)
    class Sender(protocol.Protocol):
        left = lines

        def connectionMade(self):
            self.transport.registerProducer(self, False)

        def resumeProducing(self):
            if self.left >= per_chunk:
                self.transport.write(chunk)
                self.left -= per_chunk
            elif self.left:
                self.transport.write(_line() * self.left)
                self.left = 0
            else:
                self.transport.unregisterProducer()
                self.transport.loseConnection()

        def stopProducing(self):
            self.left = 0

        def connectionLost(self, reason=None):
            reactor.stop()

    protocol.ClientCreator(reactor, Sender).connectTCP("127.0.0.1", port)
    reactor.run()


def run(sizes, workdir, progress):
    """
    @return: C{value} (lines/s) and the line count and size.
    """
    command = [sys.executable, "-m", "p2pchat.bench.raw_lines"]
    env = child_environment()
    progress(f"sending {sizes.raw_lines:,} lines of {LINE_BYTES} bytes over loopback")
    receiver = subprocess.Popen(
        command + ["receive"], stdout=subprocess.PIPE, env=env, text=True
    )
    try:
        port = int(receiver.stdout.readline())
        sender = subprocess.run(
            command + ["send", str(port), str(sizes.raw_lines)], env=env, timeout=600
        )
        outcome = json.loads(receiver.stdout.readline())
        receiver.wait(timeout=60)
    finally:
        if receiver.poll() is None:
            receiver.kill()
            receiver.wait()
    if sender.returncode or outcome["lines"] != sizes.raw_lines:
        raise RuntimeError(
            f"raw line transfer failed: sender exit {sender.returncode}, "
            f"{outcome['lines']} of {sizes.raw_lines} lines received"
        )
    seconds = outcome["seconds"]
    lines_per_s = outcome["lines"] / seconds
    return measured(
        value=round(lines_per_s),
        lines=outcome["lines"],
        line_bytes=LINE_BYTES,
        seconds=round(seconds, 3),
        mb_per_s=round(lines_per_s * LINE_BYTES / 1e6, 1),
    )


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        receive()
    elif sys.argv[1:2] == ["send"]:
        send(int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit("usage: python -m p2pchat.bench.raw_lines receive | send PORT LINES")
