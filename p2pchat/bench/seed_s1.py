"""
A small, faithful model of seed S1, the student project p2pchat replaces
("Peer2Peer-Chat-Socket-Programming", see the issue's seed 000): the
C{burst} scenario runs two of its peers beside two p2pchat nodes, so that
both are measured in the same run on the same (loaded) machine.

What S1 is, and what this model keeps of it:

  - a I{Peer} runs a I{Sender} thread and a I{Receiver} thread;
  - the sender sends each message on a new TCP connection to each other
    peer (connect, send, close: one connection per message per peer);
    unlike S1, it waits for the receiver to close each connection before
    the next: S1's sender does not, so a burst overflows its receiver's
    backlog of 15 and every dropped connection attempt waits the kernel's
    1 s SYN retry (the model ran at 17 msg/s that way); every departure
    from S1 here favours S1;
  - the receiver listens with S1's backlog (15), accepts connections one
    after the other and reads one message from each (S1 reads one
    C{recv(1024)});
  - every peer keeps every message in its I{Datastore}, through a queue
    (C{add_to_queue}) that a store step drains into the data it holds, and
    in its data-store file (C{NAME_DS.txt}, appended to per message).

Left out: S1's coordinator (the DRDC: a round trip per message asking its
queue length, and a copy of each message) and the random sleeps of up to
5 s after each message its threads take; the model is faster than S1.
No signatures, no ordering: S1 has none.  Run as C{python -m
p2pchat.bench.seed_s1 DIR PORT PEER_PORT...}: it listens on loopback
C{PORT}, keeps its data-store file in C{DIR}, sends every line of its
standard input to the peers, and prints C{stored N} on standard output
each time its datastore grows (C{ready} once it listens).
"""

import os
import queue
import socket
import sys
import threading
from typing import List

SEPARATOR = b"\n"
# S1's listen backlog and read size.
BACKLOG = 15
READ_BYTES = 1024


class Datastore:
    """
    Every message this peer has seen, filled through a queue.
    """

    def __init__(self, report, path: str):
        self._file = open(path, "ab")
        self._queue: "queue.Queue[bytes]" = queue.Queue()
        self._lock = threading.Lock()
        self.messages: List[bytes] = []
        self._report = report

    def add_to_queue(self, message: bytes) -> None:
        self._queue.put(message)
        self._free_queue()

    def _free_queue(self) -> None:
        with self._lock:
            while True:
                try:
                    message = self._queue.get_nowait()
                except queue.Empty:
                    break
                self.messages.append(message)
                self._file.write(message + SEPARATOR)
                self._file.flush()
            self._report(len(self.messages))


class Receiver(threading.Thread):
    """
    Accepts one connection at a time and stores the message it carries.
    """

    def __init__(self, port: int, datastore: Datastore):
        super().__init__(daemon=True)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(BACKLOG)
        self._datastore = datastore

    def run(self) -> None:
        while True:
            connection, _ = self.server.accept()
            with connection:
                data = connection.recv(READ_BYTES)
            if data:
                self._datastore.add_to_queue(data)


class Sender(threading.Thread):
    """
    Sends each queued message to every other peer, one connection each.
    """

    def __init__(self, peer_ports: List[int], datastore: Datastore):
        super().__init__(daemon=True)
        self.outbox: "queue.Queue[bytes]" = queue.Queue()
        self._peer_ports = peer_ports
        self._datastore = datastore

    def run(self) -> None:
        while True:
            message = self.outbox.get()
            self._datastore.add_to_queue(message)
            for port in self._peer_ports:
                with socket.create_connection(("127.0.0.1", port)) as connection:
                    connection.sendall(message)
                    # Wait until the receiver took it (it closes): see the
                    # module docstring.
                    connection.recv(1)


def main(argv: List[str]) -> None:
    directory, port, peer_ports = argv[0], int(argv[1]), [int(p) for p in argv[2:]]
    lock = threading.Lock()

    def report(count: int) -> None:
        with lock:
            sys.stdout.write(f"stored {count}\n")
            sys.stdout.flush()

    datastore = Datastore(report, os.path.join(directory, f"{port}_DS.txt"))
    receiver = Receiver(port, datastore)
    sender = Sender(peer_ports, datastore)
    receiver.start()
    sender.start()
    report(0)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin.buffer:
        sender.outbox.put(line.rstrip(SEPARATOR))


if __name__ == "__main__":
    main(sys.argv[1:])
