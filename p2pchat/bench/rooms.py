"""
rooms: per-room history and search on a large store spread over many rooms.

A store of C{rooms_entries} signed room messages spread at random over
C{rooms_count} rooms is built with L{p2pchat.log.store.core.Store.add_entries}
(see L{p2pchat.bench.corpus}); then, for C{rooms_queries} rooms picked at
random, are timed:

  - on a real node started on that store, from sending the console
    command to receiving its last line: C{/history #room 50} (followed by
    an unknown command whose error marks the end of the answer) and
    C{/search #room WORDS} (up to "N matching message(s)"), over the same
    mix of common, middling and rare words as the C{search} scenario:
    C{history_p50_ms}, C{search_p50_ms} (and p90, max);
  - the store reads behind them alone, in this process, on the same store
    reopened: L{Store.room_history} with a limit of 50 and
    L{Store.room_search}: C{store_history_p50_ms}, C{store_search_p50_ms}.

Also reported: the store's size, the node's start-up time, and the
searches refused over the store's time budget.
"""

import os
import random
import time

from p2pchat.bench.corpus import STORE_FILE_NAME, build_store, room_name
from p2pchat.bench.processes import END_MARKER, END_REPLY, NodeGroup, loopback_args
from p2pchat.bench.results import measured, percentile
from p2pchat.bench.search import SEARCH_DONE, queries
from p2pchat.log.store import SearchRefused, Store

GOAL_ENTRIES = 1_000_000
GOAL_ROOMS = 1_000
GOAL_P50_MS = 20.0
HISTORY_LIMIT = 50


def _timed(call, *arguments):
    started = time.perf_counter()
    result = call(*arguments)
    return (time.perf_counter() - started) * 1000, result


def run(sizes, workdir, progress):
    """
    @return: C{messages}, C{rooms}, C{history_p50_ms}, C{search_p50_ms}.
    """
    count, rooms = sizes.rooms_entries, sizes.rooms_count
    data_dir = os.path.join(workdir, "rooms")
    progress(f"building a store of {count:,} signed messages in {rooms:,} rooms")
    started = time.perf_counter()
    path = build_store(data_dir, count, progress, rooms=rooms)
    build_s = time.perf_counter() - started
    result = measure(sizes, workdir, data_dir, progress)
    result.update(build_s=round(build_s, 1), store_mb=round(os.path.getsize(path) / 1e6, 1))
    return result


def _stats(prefix: str, times_ms) -> dict:
    if not times_ms:
        return {f"{prefix}_p50_ms": None}
    return {
        f"{prefix}_p50_ms": round(percentile(times_ms, 0.5), 2),
        f"{prefix}_p90_ms": round(percentile(times_ms, 0.9), 2),
        f"{prefix}_max_ms": round(max(times_ms), 2),
    }


def measure(sizes, workdir, data_dir, progress) -> dict:
    """
    Time the room commands on a node started on the store in
    C{data_dir}, then the store reads alone.
    """
    count, rooms = sizes.rooms_entries, sizes.rooms_count
    chooser = random.Random(3)
    asked = [(room_name(chooser.randrange(rooms)), text)
             for text in queries(sizes.rooms_queries, count)]
    with NodeGroup(workdir) as group:
        progress("starting a node on it")
        node = group.add("rooms", *loopback_args(), data_dir=data_dir).start()
        console = group.console(node)
        progress(f"timing {len(asked)} /history #room and /search #room commands")
        history_ms, search_ms, shown, found, refused = [], [], [], [], 0
        for room, text in asked:
            # One write for the command and the end marker, so that the
            # client's own Nagle delay is not timed.
            start = len(console.received)
            sent = time.perf_counter()
            console.socket.sendall(f"/history {room} {HISTORY_LIMIT}\r\n{END_MARKER}\r\n".encode())
            match = console.wait_for(END_REPLY, start)
            history_ms.append((time.perf_counter() - sent) * 1000)
            shown.append(console.received[start:match.start()].count(b"\n"))
            console.received = b""
            start = len(console.received)
            sent = time.perf_counter()
            console.send(f"/search {room} {text}")
            match = console.wait_for(SEARCH_DONE, start)
            elapsed = (time.perf_counter() - sent) * 1000
            console.received = b""
            if match.group(1) is None:
                refused += 1
            else:
                search_ms.append(elapsed)
                found.append(int(match.group(1)))
    store = Store(os.path.join(data_dir, STORE_FILE_NAME))
    store.open()
    try:
        store_history, store_search = [], []
        for room, text in asked:
            store_history.append(_timed(store.room_history, room, HISTORY_LIMIT)[0])
            try:
                store_search.append(_timed(store.room_search, room, text)[0])
            except SearchRefused:
                pass
    finally:
        store.close()
    return measured(
        messages=count,
        rooms=rooms,
        **_stats("history", history_ms),
        **_stats("search", search_ms),
        **_stats("store_history", store_history),
        **_stats("store_search", store_search),
        queries=len(asked),
        mean_shown=round(sum(shown) / len(shown), 1),
        mean_results=round(sum(found) / len(found), 1) if found else None,
        refused_too_broad=refused,
        startup_s=round(node.started_s, 3),
    )
