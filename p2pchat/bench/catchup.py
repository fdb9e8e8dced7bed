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
"""

import os
import time

from p2pchat.bench.corpus import build_store
from p2pchat.bench.processes import NodeGroup, loopback_args
from p2pchat.bench.results import INCOMPLETE, measured, unsupported

POLL_S = 0.05
GOAL_MIN_ENTRIES = 20_000
GOAL_PER_S = 5000
GOAL_RATIO_TO_VERIFY = 0.5
KEYS = ("value", "entries", "peak_rss_mb")


def run(sizes, workdir, progress):
    """
    @return: C{value} (entries/s), C{entries}, C{peak_rss_mb} of the
        fresh node.
    """
    count = sizes.catchup_entries
    source_dir = os.path.join(workdir, "catchup-source")
    progress(f"building a store of {count:,} signed entries for node A")
    build_store(source_dir, count, progress)
    with NodeGroup(workdir) as group:
        progress("starting node A on it, and a fresh node B linked to A")
        node_a = group.add("alice", *loopback_args(), data_dir=source_dir).start()
        node_b = group.add("bob", *loopback_args(), "--peer", node_a.peer_address).start()
        node_b.wait_for_log(rb"link up with alice")
        started = time.perf_counter()
        console_b = group.console(node_b)
        held, last_change = 0, started
        progress(f"waiting for B to hold {count:,} entries")
        while held < count and time.perf_counter() - last_change <= sizes.stall_s:
            time.sleep(POLL_S)
            latest = int(console_b.status()["messages"])
            if latest != held:
                held, last_change = latest, time.perf_counter()
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
    result = measured(
        value=round(held / elapsed),
        entries=count,
        received=held,
        seconds=round(elapsed, 3),
        peak_rss_mb=peak_rss_mb,
    )
    if held < count:
        result.update(
            status=INCOMPLETE,
            reason=f"B held {held:,} of {count:,} entries; nothing more came "
            f"within {sizes.stall_s:g} s",
        )
    return result
