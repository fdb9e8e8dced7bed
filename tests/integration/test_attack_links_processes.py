"""
Attacks on the link layer of real C{twistd -n p2pchat} processes: sockets
that never speak (on a TLS listener), escape codes and fake columns in what
a peer sends, and a ping flood.
"""

import json
import os
import re
import socket
import ssl
import threading
import time

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.log.identity import Identity
from p2pchat.mesh import wire
from p2pchat.testing.rawpeer import RawPeer
from tests.processes import DEADLINE_S, NodeTestMixin, Timeout, make_ca, tls_args

ESCAPES = "\x1b[2J\x1b]0;owned\x07\nfake: log line"


def open_fds(pid):
    """
    @return: how many file descriptors process C{pid} has open.
    """
    return len(os.listdir(f"/proc/{pid}/fd"))


def wait_until(predicate, what, deadline_s=DEADLINE_S):
    """
    Call C{predicate} every 0.2 s until it is true, or raise L{Timeout}
    naming C{what} once C{deadline_s} passed.
    """
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise Timeout(f"{what} did not happen within {deadline_s:g} s")
        time.sleep(0.2)


def connect(address):
    host, port = address.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=DEADLINE_S)


def stalled_tls(address):
    """
    @return: a socket to C{address} that sent a TLS ClientHello and then
        stalls, mid-handshake, for ever.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    sock = context.wrap_socket(connect(address), do_handshake_on_connect=False)
    sock.setblocking(False)
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return sock


class IdleSocketTests(NodeTestMixin, SynchronousTestCase):
    """
    Sockets that never speak neither lock honest nodes out of a TLS
    listener nor leak its file descriptors.
    """

    def setUp(self):
        self.network = make_ca(self, "alice", "bob")

    def start_member(self, name, *args):
        return self.start(name, *tls_args(self.network, name), *args)

    def test_idle_sockets_neither_lock_out_nor_leak(self):
        """
        200 connections to a TLS node that never speak (or stall in the
        middle of the TLS handshake), opened and held, and more opened all
        the time: an honest TLS node still links; the
        node closes every one of them while they are held, so its file
        descriptors are back to about what they were (bob's link and a
        console add a few) before the attacker lets go, and after; the log
        has a bounded number of lines about them.
        """
        alice = self.start_member("alice")
        alice_console = self.console(alice)
        baseline = open_fds(alice.pid)
        mark = len(alice.output)
        idle = []
        self.addCleanup(lambda: [sock.close() for sock in idle])
        for i in range(200):
            idle.append((connect, stalled_tls)[i % 2](alice.peer_address))
        bob = self.start_member("bob", "--peer", alice.peer_address)
        bob_console = self.console(bob)

        def bob_linked():
            # The attacker keeps opening more, to take every slot freed.
            idle.append(stalled_tls(alice.peer_address))
            return int(bob_console.status()["links"]) >= 1

        wait_until(bob_linked, "bob linking to alice")
        self.assertGreaterEqual(int(alice_console.status()["links"]), 1)
        # While they are still held, alice closes them all: those evicted
        # at once, the last 16 pending at their handshake time-out (10 s;
        # Twisted aborts a TLS connection closed mid-handshake).
        wait_until(lambda: open_fds(alice.pid) <= baseline + 8,
                   f"alice closing the idle sockets (fds {open_fds(alice.pid)}, "
                   f"{len(idle)} held)", deadline_s=DEADLINE_S + 20)
        for sock in idle:
            sock.close()
        idle.clear()
        wait_until(lambda: open_fds(alice.pid) <= baseline + 8, "alice's fds staying low")
        log = alice.output[mark:]
        about_idle = re.findall(
            rb"handshakes pending|closing link with unidentified|refused TLS", log
        )
        self.assertLessEqual(len(about_idle), 20, log[-3000:])
        self.assertNotIn(b"AttributeError", alice.output)
        self.assertNotIn(b"Traceback", alice.output)


    def test_silent_members_after_tls_are_closed(self):
        """
        12 clients with a member's certificate finish the TLS handshake,
        then neither send a hello nor read: alice closes each after its
        handshake time-out, and since they never answer her TLS
        close_notify, the close is forced; her file descriptors come back
        while they still hold their sockets.
        """
        alice = self.start_member("alice")
        baseline = open_fds(alice.pid)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.load_verify_locations(os.path.join(self.network, "ca.pem"))
        context.load_cert_chain(os.path.join(self.network, "bob.pem"),
                                os.path.join(self.network, "bob.key"))
        held = []
        self.addCleanup(lambda: [sock.close() for sock in held])
        # Fewer than one address's 16 pending slots: none is evicted.
        for _ in range(12):
            held.append(context.wrap_socket(connect(alice.peer_address)))
        wait_until(lambda: open_fds(alice.pid) >= baseline + 12, "alice accepting them")
        wait_until(lambda: open_fds(alice.pid) <= baseline + 2,
                   f"alice closing the silent links (fds {open_fds(alice.pid)})",
                   deadline_s=DEADLINE_S + 20)


class HostileTextTests(NodeTestMixin, SynchronousTestCase):
    """
    What a peer sends reaches the log and the console escaped and
    rate-limited, and cannot fake columns in /peers.
    """

    def test_error_reasons_escaped_and_rate_limited(self):
        """
        50 unidentified connections each send an error full of escape
        codes before any hello: all are closed, the log holds no escape
        character and a bounded number of lines about them.  An accepted
        peer's error is logged escaped.
        """
        alice = self.start("alice")
        mark = len(alice.output)
        started = time.monotonic()
        for _ in range(50):
            sock = connect(alice.peer_address)
            sock.sendall(wire.encode_frame(wire.error(ESCAPES)) + b"\n")
            sock.settimeout(DEADLINE_S)
            while sock.recv(65536):
                pass  # until alice closes
            sock.close()
        raw = RawPeer(alice.peer_address, name="raw")
        raw.send(wire.error(ESCAPES))
        alice.wait_for_log(rb"peer raw \([0-9a-f]{8}\) at \S+ reported an error: "
                           rb"\\x1b\[2J\\x1b\]0;owned\\x07\\nfake: log line", mark)
        elapsed_s = time.monotonic() - started
        log = alice.output[mark:]
        self.assertNotIn(b"\x1b", log)
        self.assertNotIn(b"\nfake", log)
        before_hello = log.count(b"reported an error before its hello")
        self.assertGreaterEqual(before_hello, 1)
        self.assertLessEqual(before_hello, 1 + elapsed_s / 10)

    def test_address_with_spaces_refused(self):
        """
        A hello whose address has spaces (it would fake columns in /peers)
        closes the link with an error naming addr; the peer is never
        listed.
        """
        alice = self.start("alice")
        sock = connect(alice.peer_address)
        reader = sock.makefile("rb")
        self.assertEqual(json.loads(reader.readline())["type"], "hello")
        fake = "127.0.0.1:1 alive linked 0s ago"
        hello = wire.hello(Identity.generate().node_id, "mallory", fake)
        sock.sendall(wire.encode_frame(hello) + b"\n")
        frames = [json.loads(line) for line in reader if line.strip()]
        self.assertEqual(frames[-1]["type"], "error")
        self.assertIn("hello.addr", frames[-1]["reason"])
        peers = self.console(alice).command("/peers", rb"(ago|peers)\r\n(?![a-z])")
        self.assertNotIn("mallory", peers)

    def test_ping_flood_closes_link(self):
        """
        A peer that sends 1,000 pings at once gets at most a burst of
        pongs, then its link is closed as misbehaving.
        """
        alice = self.start("alice")
        raw = RawPeer(alice.peer_address, name="pinger")
        raw.socket.sendall(b"".join(
            wire.encode_frame({"type": "ping"}) + b"\n" for _ in range(1000)))
        frames = raw.frames_until_closed()
        self.assertLessEqual(sum(frame["type"] == "pong" for frame in frames), 20)
        self.assertEqual(frames[-1], {"type": "error", "reason": "more than 2 pings/s"})
        alice.wait_for_log(rb"closing link with pinger \([0-9a-f]{8}\) .*more than 2 pings/s")


class PlainIdleSocketTests(NodeTestMixin, SynchronousTestCase):
    """
    The same on a plain listener, with the attacker retaking every slot
    as fast as it frees.
    """

    def test_idle_sockets_do_not_lock_out(self):
        """
        An attacker that opens idle connections as fast as it can (in a
        thread, holding the newest 300) does not keep an honest node from
        linking.
        """
        alice = self.start("alice")
        stop = threading.Event()

        def attack():
            idle = []
            while not stop.is_set():
                try:
                    idle.append(connect(alice.peer_address))
                except OSError:
                    time.sleep(0.01)
                while len(idle) > 300:
                    idle.pop(0).close()
            for sock in idle:
                sock.close()

        attacker = threading.Thread(target=attack, daemon=True)
        attacker.start()
        self.addCleanup(attacker.join)
        self.addCleanup(stop.set)
        bob = self.start("bob", "--peer", alice.peer_address)
        bob_console = self.console(bob)
        wait_until(lambda: int(bob_console.status()["links"]) >= 1, "bob linking to alice")
