"""
catchup: a fresh node pulls a log it missed.

Node A is started on a store of C{catchup_entries} signed entries (built
as for the search scenario); a fresh node B with an empty data directory
is started with C{--peer} A.  The clock runs from B's "link up" log line
until B's C{/status} counts every entry; B's peak resident memory
(VmHWM) is read at the end.

A build without catch-up replication never sends B anything: when B has
received nothing C{stall_s} after the link came up, the scenario reports
C{unsupported}.  When entries arrive but stop short, it is
C{incomplete}, with the rate measured until the last progress.

Its goal is a ratio to the verify ceiling measured in the same run: 0.9,
or 1.0 when a second core was idle (verification runs in threads beside
the reactor).  So the result says how idle the machine was: C{idle_cores},
the cores idle during a 1 s sample just before the nodes start (from
C{/proc/stat}), C{other_busy_cores}, what other processes kept busy while
B caught up (the machine's busy time less A's and B's, per second), and the
CPU time A and B spent per entry (C{a_cpu_us_per_entry},
C{b_cpu_us_per_entry}).
"""

import os
import time

from p2pchat.bench.corpus import build_store
from p2pchat.bench.processes import NodeGroup, loopback_args
from p2pchat.bench.results import INCOMPLETE, measured, unsupported

POLL_S = 0.05
GOAL_MIN_ENTRIES = 20_000
GOAL_PER_S = 5000
GOAL_RATIO_TO_VERIFY = 0.9
GOAL_RATIO_IDLE_CORE = 1.0
# Idle cores (of the sample before the run) that count as "a second core
# idle": B's reactor thread takes one, verification the other.
IDLE_CORES_FOR_SECOND = 1.5
IDLE_SAMPLE_S = 1.0
KEYS = ("value", "entries", "peak_rss_mb")


def _machine_jiffies():
    """
    @return: C{(busy, total)} jiffies of all CPUs since boot, or C{None}
        without C{/proc/stat}.
    """
    try:
        with open("/proc/stat") as stat:
            fields = [int(v) for v in stat.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return sum(fields[:8]) - idle, sum(fields[:8])


def _process_jiffies(pid: int):
    """
    @return: user + system jiffies of process C{pid} (all its threads),
        or C{None}.
    """
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return int(fields[11]) + int(fields[12])


def idle_cores(sample_s: float = IDLE_SAMPLE_S):
    """
    @return: how many cores were idle, on average, over C{sample_s}, or
        C{None} where there is no C{/proc/stat}.
    """
    before = _machine_jiffies()
    time.sleep(sample_s)
    after = _machine_jiffies()
    if before is None or after is None or after[1] == before[1]:
        return None
    busy, total = after[0] - before[0], after[1] - before[1]
    return round((1 - busy / total) * (os.cpu_count() or 1), 2)


def _cpu_report(machine, processes, elapsed_s: float, entries: int) -> dict:
    """
    @param machine: L{_machine_jiffies} at the start and the end.
    @param processes: C{(name, start, end)} jiffies of A and B.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    report = {}
    own = 0
    for name, start, end in processes:
        if start is None or end is None:
            return report
        own += end - start
        report[f"{name}_cpu_us_per_entry"] = round((end - start) / tick * 1e6 / max(entries, 1))
    if machine[0] is not None and machine[1] is not None and elapsed_s > 0:
        other = (machine[1][0] - machine[0][0] - own) / tick
        report["other_busy_cores"] = round(max(other, 0) / elapsed_s, 2)
    return report


def _number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def run(sizes, workdir, progress):
    """
    @return: C{value} (entries/s), C{entries}, C{peak_rss_mb} of the
        fresh node.
    """
    count = sizes.catchup_entries
    source_dir = os.path.join(workdir, "catchup-source")
    progress(f"building a store of {count:,} signed entries for node A")
    build_store(source_dir, count, progress)
    progress(f"sampling idle cores for {IDLE_SAMPLE_S:g} s")
    idle = idle_cores()
    with NodeGroup(workdir) as group:
        progress("starting node A on it, and a fresh node B linked to A")
        node_a = group.add("alice", *loopback_args(), data_dir=source_dir).start()
        node_b = group.add("bob", *loopback_args(), "--peer", node_a.peer_address).start()
        node_b.wait_for_log(rb"link up with alice")
        started = time.perf_counter()
        machine_start = _machine_jiffies()
        a_start, b_start = _process_jiffies(node_a.pid), _process_jiffies(node_b.pid)
        console_b = group.console(node_b)
        held, last_change = 0, started
        progress(f"waiting for B to hold {count:,} entries")
        while held < count and time.perf_counter() - last_change <= sizes.stall_s:
            time.sleep(POLL_S)
            latest = int(console_b.status()["messages"])
            if latest != held:
                held, last_change = latest, time.perf_counter()
        cpu = _cpu_report(
            (machine_start, _machine_jiffies()),
            [("a", a_start, _process_jiffies(node_a.pid)),
             ("b", b_start, _process_jiffies(node_b.pid))],
            time.perf_counter() - started, held,
        )
        status = console_b.status()
        memory = node_b.memory_kb()
        peak_rss_mb = round(memory["VmHWM"] / 1024, 1) if memory else None
    if held == 0:
        return unsupported(
            f"a fresh node linked to a node holding {count:,} entries received "
            f"none of them within {sizes.stall_s:g} s (no catch-up replication)",
            KEYS,
            entries=count,
            waited_s=sizes.stall_s,
        )
    elapsed = last_change - started
    second_core_idle = None if idle is None else idle >= IDLE_CORES_FOR_SECOND
    result = measured(
        value=round(held / elapsed),
        entries=count,
        received=held,
        seconds=round(elapsed, 3),
        peak_rss_mb=peak_rss_mb,
        idle_cores=idle,
        second_core_idle=second_core_idle,
        cores_idle_ratio_goal=(
            GOAL_RATIO_IDLE_CORE if second_core_idle else GOAL_RATIO_TO_VERIFY
        ),
        longest_store_call_ms=_number(status.get("longest_store_call_ms")),
        longest_reactor_turn_ms=_number(status.get("longest_reactor_turn_ms")),
        **cpu,
    )
    if held < count:
        result.update(
            status=INCOMPLETE,
            reason=f"B held {held:,} of {count:,} entries; nothing more came "
            f"within {sizes.stall_s:g} s",
        )
    return result
