"""
burst: a burst of lines pasted into one console, until the linked node
stores them all; and seed S1 beside it, in the same run.

Two C{twistd -n p2pchat} processes on loopback, bob linked to alice.
C{burst_lines} lines are written at once to alice's console over a raw
socket; the clock runs from the first byte written until bob's C{/status}
counts every one of them stored (C{seconds}); C{first_ms} until the first
evidence that bob stored one (its console showing it, or C{/status}
counting it, polled alike).  Then two peers of seed S1 (L{p2pchat.bench.seed_s1},
two processes, one TCP connection per message) carry C{burst_lines}
messages the same way: written at once to the first, timed until the
second stores them all (C{seed_s1_msg_per_s}).  The runner relates
C{seconds} to the goal (0.25 s + N / (0.7 x verify_limit)) and p2pchat's
rate to S1's.
"""

import os
import select
import subprocess
import sys
import time

from p2pchat.bench.processes import (
    DEADLINE_S,
    NodeGroup,
    Timeout,
    child_environment,
    free_ports,
    loopback_args,
)
from p2pchat.bench.results import INCOMPLETE, measured

POLL_S = 0.01
# The goal: a burst of N lines lands in GOAL_FIXED_S + N / (GOAL_RATIO x
# the verify ceiling), and at least GOAL_TIMES_SEED_S1 times S1's rate.
GOAL_FIXED_S = 0.25
GOAL_RATIO = 0.7
GOAL_TIMES_SEED_S1 = 5.0
GOAL_LINES = 1000
MARK = b"burst line "


def goal_seconds(lines: int, verify_per_s):
    """
    @return: how long a burst of C{lines} may take, or C{None} without a
        verify ceiling.
    """
    if not verify_per_s:
        return None
    return round(GOAL_FIXED_S + lines / (GOAL_RATIO * verify_per_s), 3)


def run_p2pchat(count: int, workdir: str, stall_s: float, progress) -> dict:
    """
    @return: the p2pchat half of the result.
    """
    with NodeGroup(workdir) as group:
        progress("starting nodes alice and bob")
        alice = group.add("alice", *loopback_args()).start()
        bob = group.add("bob", *loopback_args(), "--peer", alice.peer_address).start()
        bob.wait_for_log(rb"link up with alice")
        console_a, console_b = group.console(alice), group.console(bob)
        watch_b = group.console(bob)
        before = int(console_b.status()["messages"])
        payload = b"".join(MARK + f"{index} of a paste\r\n".encode() for index in range(count))
        progress(f"writing {count:,} lines at once to alice's console")
        started = time.perf_counter()
        console_a.socket.sendall(payload)
        first_s = None
        stored, last_change = 0, started
        while stored < count and time.perf_counter() - last_change <= stall_s:
            time.sleep(POLL_S)
            console_a.receive(0)  # alice's echo of the posts
            # The first line stored at bob: the earliest evidence of it,
            # bob's console showing it or its /status counting it.
            if first_s is None and watch_b.receive(0) and MARK in watch_b.received:
                first_s = time.perf_counter() - started
            latest = int(console_b.status()["messages"]) - before
            if latest != stored:
                stored, last_change = latest, time.perf_counter()
                if first_s is None:
                    first_s = last_change - started
        seconds = last_change - started
    result = {
        "messages": count,
        "stored": stored,
        "delivered": round(stored / count, 4),
        "seconds": round(seconds, 3),
        "first_ms": None if first_s is None else round(first_s * 1000, 1),
        "value": round(stored / seconds) if stored else 0,
    }
    if stored < count:
        result.update(
            status=INCOMPLETE,
            reason=f"{count - stored} of {count} lines not stored at bob "
            f"{stall_s:g} s after the last progress",
        )
    return result


def _read_until(process: subprocess.Popen, wanted: bytes, buffered: bytearray,
                deadline_s: float) -> bool:
    """
    Read C{process}'s output into C{buffered} until a line equal to
    C{wanted} arrives (C{True}), or nothing arrives for C{deadline_s}.
    """
    fd = process.stdout.fileno()
    while (b"\n" + wanted + b"\n") not in b"\n" + bytes(buffered[-4096:]):
        ready, _, _ = select.select([fd], [], [], deadline_s)
        if not ready:
            return False
        data = os.read(fd, 65536)
        if not data:
            return False
        buffered += data
    return True


def run_seed_s1(count: int, workdir: str, stall_s: float, progress) -> dict:
    """
    @return: the seed S1 half of the result.
    """
    port_a, port_b, port_drdc = free_ports(3)
    command = [sys.executable, "-u", "-m", "p2pchat.bench.seed_s1"]
    processes = [
        subprocess.Popen(command + arguments, stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, env=child_environment())
        for arguments in (
            ["drdc", str(port_drdc)],
            ["peer", workdir, str(port_a), str(port_drdc), str(port_b)],
            ["peer", workdir, str(port_b), str(port_drdc), str(port_a)],
        )
    ]
    peers = processes[1:]
    try:
        outputs = [bytearray(), bytearray()]
        if not _read_until(processes[0], b"ready", bytearray(), DEADLINE_S):
            raise Timeout("seed S1's coordinator did not start")
        for peer, output in zip(peers, outputs):
            if not _read_until(peer, b"ready", output, DEADLINE_S):
                raise Timeout("a seed S1 peer did not start")
        progress(f"writing {count:,} messages at once to seed S1 peer A")
        payload = b"".join(MARK + f"{index} of a paste\n".encode() for index in range(count))
        started = time.perf_counter()
        peers[0].stdin.write(payload)
        peers[0].stdin.flush()
        done = _read_until(peers[1], f"stored {count}".encode(), outputs[1], stall_s)
        seconds = time.perf_counter() - started
        lines = bytes(outputs[1]).split(b"\n")
        stored = max(int(line.split()[1]) for line in lines if line.startswith(b"stored "))
    finally:
        for process in processes:
            process.kill()
            process.wait()
            process.stdin.close()
            process.stdout.close()
    return {
        "seed_s1_messages": count,
        "seed_s1_delivered": round(stored / count, 4),
        "seed_s1_seconds": round(seconds, 3) if done else None,
        "seed_s1_msg_per_s": round(count / seconds) if done else None,
    }


def run(sizes, workdir, progress):
    """
    @return: C{seconds}, C{first_ms}, C{messages}, C{delivered}, C{value}
        (messages/s) and C{seed_s1_msg_per_s}, among others.
    """
    count = sizes.burst_lines
    result = run_p2pchat(count, workdir, sizes.stall_s, progress)
    s1_dir = os.path.join(workdir, "seed_s1")
    os.makedirs(s1_dir, exist_ok=True)
    result.update(run_seed_s1(count, s1_dir, sizes.stall_s, progress))
    if result["seed_s1_msg_per_s"] is None:
        result.setdefault("status", INCOMPLETE)
        result.setdefault(
            "reason", f"seed S1 stored {result['seed_s1_delivered']:.1%} of its messages"
        )
    return result if "status" in result else measured(**result)
