"""
rooms: per-room history and search on a large store spread over many rooms.

A store of C{rooms_entries} signed room messages spread at random over
C{rooms_count} rooms is built with L{p2pchat.log.store.core.Store.add_entries}
(see L{p2pchat.bench.corpus}); then, for C{rooms_queries} rooms picked at
random, the store's reads that C{/history #room 50} and C{/search #room
WORDS} run on the node's reactor thread are timed: L{Store.room_history}
with a limit of 50, and L{Store.room_search} over the same mix of common,
middling and rare words as the C{search} scenario.  The store is reopened
first, so no read of the build is cached in the connection.

Reported: C{history_p50_ms} and C{search_p50_ms} (and p90, max), the
store's size, and the search refusals over the store's time budget.
"""

import os
import random
import time

from p2pchat.bench.corpus import build_store, room_name
from p2pchat.bench.results import measured, percentile
from p2pchat.bench.search import queries
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
    chooser = random.Random(3)
    texts = queries(sizes.rooms_queries, count)
    store = Store(path)
    store.open()
    try:
        progress(f"timing {len(texts)} room histories and searches")
        history_ms, search_ms, shown, found, refused = [], [], [], [], 0
        for text in texts:
            room = room_name(chooser.randrange(rooms))
            elapsed, entries = _timed(store.room_history, room, HISTORY_LIMIT)
            history_ms.append(elapsed)
            shown.append(len(entries))
            try:
                elapsed, entries = _timed(store.room_search, room, text)
            except SearchRefused:
                refused += 1
                continue
            search_ms.append(elapsed)
            found.append(len(entries))
    finally:
        store.close()
    return measured(
        messages=count,
        rooms=rooms,
        history_p50_ms=round(percentile(history_ms, 0.5), 2),
        history_p90_ms=round(percentile(history_ms, 0.9), 2),
        history_max_ms=round(max(history_ms), 2),
        search_p50_ms=round(percentile(search_ms, 0.5), 2) if search_ms else None,
        search_p90_ms=round(percentile(search_ms, 0.9), 2) if search_ms else None,
        search_max_ms=round(max(search_ms), 2) if search_ms else None,
        queries=len(texts),
        mean_shown=round(sum(shown) / len(shown), 1),
        mean_results=round(sum(found) / len(found), 1) if found else None,
        refused_too_broad=refused,
        store_mb=round(os.path.getsize(path) / 1e6, 1),
        build_s=round(build_s, 1),
    )
