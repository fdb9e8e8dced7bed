"""
catchup_multi: a fresh node pulls a log it missed from three nodes at once.

Three nodes A1-A3 are started on copies of one store of C{catchup_entries}
signed entries (built as for the catchup scenario); a fresh node B with an
empty data directory is started with C{--peer} to all three.  The clock
runs from B's first "link up" log line until B's C{/status} counts every
entry.  C{duplicate_fraction} is (entry frames B received - entries) /
entry frames B received, from B's C{/status} counter C{entries_received}
(every entry frame from a peer, duplicates included): 0 when each entry
came once, 2/3 when each of the three sent everything.

A build without the counter reports C{duplicate_fraction} as unsupported;
a build without catch-up replication, as the catchup scenario does.
"""

import os
import shutil
import time

from p2pchat.bench.corpus import STORE_FILE_NAME, build_store
from p2pchat.bench.processes import NodeGroup, loopback_args
from p2pchat.bench.results import INCOMPLETE, mark_field_unsupported, measured, unsupported

POLL_S = 0.05
SOURCES = 3
GOAL_DUPLICATE_FRACTION = 0.10
KEYS = ("value", "entries", "duplicate_fraction")
COUNTER = "entries_received"


def run(sizes, workdir, progress):
    """
    @return: C{value} (entries/s), C{entries}, C{duplicate_fraction},
        C{received_frames} and C{sources}.
    """
    count = sizes.catchup_entries
    first_dir = os.path.join(workdir, "source-1")
    progress(f"building a store of {count:,} signed entries for {SOURCES} nodes")
    build_store(first_dir, count, progress)
    source_dirs = [first_dir]
    for index in range(2, SOURCES + 1):
        directory = os.path.join(workdir, f"source-{index}")
        os.makedirs(directory, mode=0o700)
        shutil.copyfile(os.path.join(first_dir, STORE_FILE_NAME),
                        os.path.join(directory, STORE_FILE_NAME))
        source_dirs.append(directory)
    with NodeGroup(workdir) as group:
        progress(f"starting {SOURCES} nodes on it, and a fresh node linked to all")
        sources = [
            group.add(f"a{index}", *loopback_args(), data_dir=directory).start()
            for index, directory in enumerate(source_dirs, 1)
        ]
        args = list(loopback_args())
        for source in sources:
            args += ["--peer", source.peer_address]
        fresh = group.add("fresh", *args).start()
        fresh.wait_for_log(rb"link up with a\d")
        started = time.perf_counter()
        console = group.console(fresh)
        held, last_change, status = 0, started, {}
        progress(f"waiting for the fresh node to hold {count:,} entries")
        while held < count and time.perf_counter() - last_change <= sizes.stall_s:
            time.sleep(POLL_S)
            status = console.status()
            latest = int(status["messages"])
            if latest != held:
                held, last_change = latest, time.perf_counter()
        # Copies still in flight when the last entry was stored count too.
        time.sleep(min(1.0, sizes.stall_s))
        status = console.status()
    if held == 0:
        return unsupported(
            f"a fresh node linked to {SOURCES} nodes holding {count:,} entries received "
            f"none of them within {sizes.stall_s:g} s (no catch-up replication)",
            KEYS, entries=count, sources=SOURCES,
        )
    elapsed = last_change - started
    result = measured(
        value=round(held / elapsed),
        entries=count,
        received=held,
        seconds=round(elapsed, 3),
        sources=SOURCES,
        duplicate_fraction=None,
    )
    if COUNTER in status:
        frames = int(status[COUNTER])
        result["received_frames"] = frames
        result["duplicate_fraction"] = round((frames - held) / frames, 4) if frames else None
    else:
        mark_field_unsupported(
            result, "duplicate_fraction", f"/status has no {COUNTER} counter")
    if held < count:
        result.update(
            status=INCOMPLETE,
            reason=f"the fresh node held {held:,} of {count:,} entries; nothing more "
            f"came within {sizes.stall_s:g} s",
        )
    return result
