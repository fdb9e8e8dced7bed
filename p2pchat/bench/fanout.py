"""
fanout: one post, every node, how fast and with how many copies.

C{fanout_nodes} real nodes on loopback.  Node i > 0 is started with
C{--peer} to two earlier nodes (chosen at random, seeded; node 1 has only
node 0), so the network is connected and has cycles, as a partial mesh
does.  Once the network has settled (every node lists every other as alive and
no node's link count changed for a few seconds: membership, not the
C{--peer} topology, decides the links), C{fanout_messages} messages are
posted one
at a time, C{fanout_interval_s} apart, each from the next node in turn,
through its console; every node's console is watched, and the latency of
each (message, receiving node) pair is from writing the post to reading
the message on that node's console.

C{redundancy} is the number of entry frames (copies) received by all
nodes during the posts, divided by messages times receiving nodes.  It
needs a counter in C{/status} (see L{COPY_COUNTERS}); a build without one
reports it as C{None} with the reason.

The B{floor} (C{floor_p99_ms}) is the same measurement on the same seeded
topology of C{fanout_nodes} processes that are plain Twisted
C{LineReceiver}s relaying each new line to their neighbours
(L{p2pchat.bench.floor_node}), measured just before, in the same
conditions: C{ratio_to_floor} is p99 / floor p99.  C{fanout_loaded} runs
both again beside a CPU hog (a busy loop in another process, killed
after), which takes one core.
"""

import random
import re
import select
import socket
import subprocess
import sys
import time

from p2pchat.bench.processes import NodeGroup, child_environment, free_ports, loopback_args
from p2pchat.bench.results import (
    INCOMPLETE,
    mark_field_unsupported,
    measured,
    percentile,
)

# /status keys that count the entry frames a node received, duplicates
# included, in order of preference.
COPY_COUNTERS = ("received_copies", "entries_received")
TOKEN = re.compile(rb"fanout-(\d+)-end")
LINKS_DEADLINE_S = 60.0
STABLE_S = 3.0
GOAL_NODES = 32
GOAL_RATIO_TO_FLOOR = 3.0
GOAL_COPIES = 1.5
FLOOR_READY_S = 30.0
HOG = "while True: pass"


def topology(nodes: int, seed: int = 3):
    """
    @return: for each node, the earlier nodes it is given as C{--peer}.
    """
    chooser = random.Random(seed)
    return [
        sorted(chooser.sample(range(index), min(2, index))) for index in range(nodes)
    ]


def _wait_for_settled(consoles, deadline_s, stable_s=STABLE_S):
    """
    Wait until the network has settled: every node knows every other as
    alive, has a link, and no node's link count changed for C{stable_s}
    (membership keeps each node's links near C{--max-links}, so the
    C{--peer} topology is only where it starts).

    @return: the links each node counts at the end, and whether it settled.
    """
    deadline = time.monotonic() + deadline_s
    others = len(consoles) - 1
    last, since = None, time.monotonic()
    while True:
        statuses = [console.status() for console in consoles]
        links = [int(status["links"]) for status in statuses]
        ready = all(int(s["peers"]) == others and int(s["links"]) > 0 for s in statuses)
        if links != last or not ready:
            last, since = links, time.monotonic()
        elif time.monotonic() - since >= stable_s:
            return links, True
        if time.monotonic() > deadline:
            return links, False
        time.sleep(0.2)


def _copies(statuses):
    """
    @return: the copy counter's name and each node's value, or
        C{(None, None)} if the build has none.
    """
    for key in COPY_COUNTERS:
        if all(key in status for status in statuses):
            return key, [int(status[key]) for status in statuses]
    return None, None


def _post_and_watch(sockets, post, sizes):
    """
    Post C{fanout_messages} messages, one every C{fanout_interval_s}, from
    node after node (C{post(index, text)}), reading every node's socket
    (in C{sockets}, by node) for the messages' tokens, until every node
    saw every message or nothing came for C{stall_s}.

    @return: C{sent_at} (message: (origin, time)) and C{arrived}
        ((message, node): time).
    """
    count, messages = len(sockets), sizes.fanout_messages
    sent_at, arrived = {}, {}
    by_socket = {sock: index for index, sock in enumerate(sockets)}
    pending = {index: b"" for index in range(count)}

    def read(timeout_s):
        ready, _, _ = select.select(list(by_socket), [], [], timeout_s)
        now = time.perf_counter()
        for sock in ready:
            index = by_socket[sock]
            data = sock.recv(1 << 20)
            lines = (pending[index] + data).split(b"\n")
            pending[index] = lines.pop()
            for line in lines:
                match = TOKEN.search(line)
                if match:
                    arrived.setdefault((int(match.group(1)), index), now)

    for number in range(messages):
        origin = number % count
        sent_at[number] = (origin, time.perf_counter())
        post(origin, f"fan-out test fanout-{number}-end")
        until = time.perf_counter() + sizes.fanout_interval_s
        while time.perf_counter() < until:
            read(max(0.0, until - time.perf_counter()))
    last_change = time.perf_counter()
    while len(arrived) - messages < messages * (count - 1):
        seen = len(arrived)
        read(0.1)
        if len(arrived) != seen:
            last_change = time.perf_counter()
        elif time.perf_counter() - last_change > sizes.stall_s:
            break
    return sent_at, arrived


def _latencies_ms(sent_at, arrived):
    return [
        (at - sent_at[number][1]) * 1000
        for (number, index), at in arrived.items()
        if index != sent_at[number][0]
    ]


def floor(sizes, progress):
    """
    The floor: the same topology of plain C{LineReceiver} relays.

    @return: the p99 latency in ms, and the share of arrivals delivered.
    """
    count = sizes.fanout_nodes
    peers = topology(count)
    ports = free_ports(count)
    processes, sockets = [], []
    progress(f"floor: starting {count} LineReceiver relays")
    try:
        for index in range(count):
            command = [sys.executable, "-m", "p2pchat.bench.floor_node", str(ports[index])]
            command += [str(ports[peer]) for peer in peers[index]]
            process = subprocess.Popen(command, env=child_environment(),
                                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
            processes.append(process)
            ready, _, _ = select.select([process.stdout], [], [], FLOOR_READY_S)
            line = process.stdout.readline() if ready else b""
            if line.strip() != b"ready":
                raise RuntimeError(f"floor relay {index} did not start: {line!r}")
        for port in ports:
            sockets.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.5)  # every relay has accepted its observer
        progress(f"floor: posting {sizes.fanout_messages} messages")
        sent_at, arrived = _post_and_watch(
            sockets, lambda index, text: sockets[index].sendall(text.encode() + b"\n"), sizes)
    finally:
        for sock in sockets:
            sock.close()
        for process in processes:
            process.kill()
            process.wait()
    latencies_ms = _latencies_ms(sent_at, arrived)
    expected = sizes.fanout_messages * (count - 1)
    p99 = round(percentile(latencies_ms, 0.99), 2) if latencies_ms else None
    return p99, round(len(latencies_ms) / expected, 4)


def run_loaded(sizes, workdir, progress):
    """
    L{run} beside a CPU hog taking one core.
    """
    progress("starting a CPU hog (a busy loop in another process)")
    hog = subprocess.Popen([sys.executable, "-c", HOG], stdin=subprocess.DEVNULL)
    try:
        result = run(sizes, workdir, progress)
    finally:
        hog.kill()
        hog.wait()
    result["load"] = "a busy-loop process beside the nodes"
    return result


def run(sizes, workdir, progress):
    """
    @return: C{nodes}, C{p50_ms}, C{p99_ms}, C{floor_p99_ms},
        C{ratio_to_floor}, C{redundancy}, C{delivered}.
    """
    floor_p99_ms, floor_delivered = floor(sizes, progress)
    count, messages = sizes.fanout_nodes, sizes.fanout_messages
    peers = topology(count)
    ports = free_ports(2 * count)
    with NodeGroup(workdir) as group:
        progress(f"starting {count} nodes")
        nodes = []
        for index in range(count):
            args = loopback_args(ports[2 * index], ports[2 * index + 1])
            for peer in peers[index]:
                args += ["--peer", f"127.0.0.1:{ports[2 * peer]}"]
            nodes.append(group.add(f"n{index:02d}", *args).spawn())
        for node in nodes:
            node.wait_started()
        consoles = [group.console(node) for node in nodes]
        progress("waiting for the network to settle")
        links, settled = _wait_for_settled(consoles, LINKS_DEADLINE_S)
        before = [console.status() for console in consoles]
        progress(f"posting {messages} messages, one every {sizes.fanout_interval_s:g} s")
        sent_at, arrived = _post_and_watch(
            [console.socket for console in consoles],
            lambda index, text: consoles[index].send(text), sizes)
        expected_arrivals = messages * (count - 1)
        for console in consoles:
            console.received = b""
        after = [console.status() for console in consoles]
    latencies_ms = _latencies_ms(sent_at, arrived)
    delivered = len(latencies_ms) / expected_arrivals
    result = measured(
        nodes=count,
        messages=messages,
        links=sum(links) // 2,
        p50_ms=round(percentile(latencies_ms, 0.5), 2) if latencies_ms else None,
        p99_ms=round(percentile(latencies_ms, 0.99), 2) if latencies_ms else None,
        floor_p99_ms=floor_p99_ms,
        floor_delivered=floor_delivered,
        max_ms=round(max(latencies_ms), 2) if latencies_ms else None,
        redundancy=None,
        delivered=round(delivered, 4),
        digests_equal=len({status["digest"] for status in after}) == 1,
    )
    key, copies_before = _copies(before)
    if key is None:
        mark_field_unsupported(
            result,
            "redundancy",
            "/status has no count of entry frames received "
            f"(looked for {', '.join(COPY_COUNTERS)})",
        )
    else:
        _, copies_after = _copies(after)
        received = sum(copies_after) - sum(copies_before)
        result["redundancy"] = round(received / expected_arrivals, 3)
        result["copy_counter"] = key
    if delivered < 1:
        result.update(
            status=INCOMPLETE,
            reason=f"{expected_arrivals - len(latencies_ms)} of {expected_arrivals} "
            "arrivals missing",
        )
    # Live delivery's repairs during the posts, summed over the nodes
    # (a build without the /status counters has none).
    for key in ("live_grafted", "live_prunes", "live_gap_rounds", "live_late_arrivals"):
        if all(key in status for status in before + after):
            result[key[len("live_"):]] = sum(
                int(a[key]) - int(b[key]) for a, b in zip(after, before))
    result["links_per_node"] = [min(links), max(links)]
    if not settled:
        result["unsettled"] = (
            f"links or membership still changing after {LINKS_DEADLINE_S:g} s; "
            "measured anyway"
        )
    return result
