"""
A small, faithful model of seed S1, the student project p2pchat replaces
("Peer2Peer-Chat-Socket-Programming", see the issue's seed 000): the
C{burst} scenario runs two of its peers beside two p2pchat nodes, so that
both are measured in the same run on the same (loaded) machine.

What S1 is (its code: C{sender.py}, C{reciever.py}, C{DRDC.py},
C{repository.py}), and what this model keeps of it:

  - a I{Peer} runs a I{Sender} thread and a I{Receiver} thread, and one
    coordinator process, the I{DRDC}, serves every peer;
  - for each message the sender asks the DRDC for its queue length (a new
    connection carrying C{request_queue|PORT}), waits on a socket of its
    own for the DRDC to connect back with the number, then sends the
    message on a new TCP connection to each other peer, and sends the
    DRDC a copy on one more new connection: four connections per message
    to one peer;
  - unlike S1, the sender waits for the receiver to close each connection
    before the next: S1's sender does not, so a burst overflows its
    receiver's backlog of 15 and every dropped connection attempt waits
    the kernel's 1 s SYN retry (the model ran at 17 msg/s that way);
  - the receiver listens with S1's backlog (15), accepts connections one
    after the other and reads one message from each (S1 reads one
    C{recv(1024)});
  - every peer keeps every message in its I{Datastore}, through a queue
    (C{add_to_queue}) that a store step drains into the data it holds, and
    in its data-store file (C{NAME_DS.txt}, appended to per message).

Left out, each in S1's favour: the random sleeps of up to 5 s its threads
take after each message; the DRDC's refusal once its queue holds 10
messages (it is drained into the file every 15 s, so S1 itself stores at
most 10 messages per 15 s); its reply to port 1 instead of the asker's.
No signatures, no ordering: S1 has none.  Run the coordinator as
C{python -m p2pchat.bench.seed_s1 drdc PORT} and a peer as C{python -m
p2pchat.bench.seed_s1 peer DIR PORT DRDC_PORT PEER_PORT...}: each prints
C{ready} once it listens; a peer listens on loopback C{PORT}, keeps its
data-store file in C{DIR}, sends every line of its standard input to the
peers, and prints C{stored N} on standard output each time its datastore
grows.
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


class Coordinator(threading.Thread):
    """
    S1's DRDC: answers queue-length requests by connecting back to the
    asker, and keeps a copy of every message, in a thread per connection.
    """

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.server = socket.socket()
        self.server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.server.bind(("127.0.0.1", port))
        self.server.listen(BACKLOG)
        self._queue: List[bytes] = []

    def run(self) -> None:
        while True:
            connection, _ = self.server.accept()
            threading.Thread(target=self._serve, args=(connection,), daemon=True).start()

    def _serve(self, connection: socket.socket) -> None:
        with connection:
            data = connection.recv(READ_BYTES)
        if data.startswith(b"request_queue|"):
            reply_port = int(data.split(b"|")[1])
            with socket.create_connection(("127.0.0.1", reply_port)) as reply:
                reply.sendall(str(len(self._queue)).encode())
        elif data:
            self._queue.append(data)


class Sender(threading.Thread):
    """
    Sends each queued message to every other peer, one connection each,
    after asking the coordinator for its queue length, and sends the
    coordinator a copy.
    """

    def __init__(self, port: int, drdc_port: int, peer_ports: List[int], datastore: Datastore):
        super().__init__(daemon=True)
        self.outbox: "queue.Queue[bytes]" = queue.Queue()
        self._port = port
        self._drdc_port = drdc_port
        self._peer_ports = peer_ports
        self._datastore = datastore
        # Where the coordinator answers (S1 binds port 6666 for each
        # message; one socket kept open is the faster equivalent).
        self._answers = socket.socket()
        self._answers.bind(("127.0.0.1", 0))
        self._answers.listen(BACKLOG)

    def run(self) -> None:
        reply_port = self._answers.getsockname()[1]
        while True:
            message = self.outbox.get()
            with socket.create_connection(("127.0.0.1", self._drdc_port)) as connection:
                connection.sendall(b"request_queue|%d" % (reply_port,))
            answer, _ = self._answers.accept()
            with answer:
                answer.recv(READ_BYTES)
            self._datastore.add_to_queue(message)
            data = b"Receive_From |%d|" % (self._port,) + message
            for port in self._peer_ports:
                with socket.create_connection(("127.0.0.1", port)) as connection:
                    connection.sendall(data)
                    # Wait until the receiver took it (it closes): see the
                    # module docstring.
                    connection.recv(1)
            with socket.create_connection(("127.0.0.1", self._drdc_port)) as connection:
                connection.sendall(data)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def main(argv: List[str]) -> None:
    if argv[0] == "drdc":
        Coordinator(int(argv[1])).start()
        _say("ready")
        threading.Event().wait()
        return
    directory, port, drdc_port = argv[1], int(argv[2]), int(argv[3])
    peer_ports = [int(p) for p in argv[4:]]
    lock = threading.Lock()

    def report(count: int) -> None:
        with lock:
            _say(f"stored {count}")

    datastore = Datastore(report, os.path.join(directory, f"{port}_DS.txt"))
    receiver = Receiver(port, datastore)
    sender = Sender(port, drdc_port, peer_ports, datastore)
    receiver.start()
    sender.start()
    report(0)
    _say("ready")
    for line in sys.stdin.buffer:
        sender.outbox.put(line.rstrip(SEPARATOR))


if __name__ == "__main__":
    main(sys.argv[1:])
