"""
search: C{/search} latency, start-up time and memory on a large store.

A store of C{search_entries} signed chat entries is built with
L{p2pchat.log.store.core.Store.add_entries} (see L{p2pchat.bench.corpus}); then a
real node is started on it and measured:

  - C{startup_s}: from starting the process to its "started:" log line;
  - C{p50_ms} (and p90, max): from sending C{/search WORDS} on the console
    to receiving its last line ("N matching message(s)", or the refusal of
    a search over the store's time budget, counted in C{refused_too_broad}),
    over queries of common, middling and rare words and word pairs;
  - C{rss_mb}: the node's resident memory after the queries (VmRSS), and
    its peak (VmHWM).
"""

import os
import random
import re
import time

from p2pchat.bench.corpus import VOCABULARY, build_store
from p2pchat.bench.processes import NodeGroup, loopback_args
from p2pchat.bench.results import measured, percentile

# The last line of a /search answer: the count, or the refusal of a search
# that ran past the store's time budget.
SEARCH_DONE = re.compile(rb"(?:(\d+) matching message\(s\)|error: search too broad[^\r]*)\r\n")
GOAL_ENTRIES = 1_000_000
GOAL_P50_MS = 20.0
GOAL_RSS_MB = 150.0


def queries(count: int, entries: int, seed: int = 2):
    """
    @return: C{count} search texts: single words across the frequency
        range (the vocabulary is ordered most common first), pairs of
        words, and rare C{topicNNN} words.
    """
    chooser = random.Random(seed)
    texts = []
    for index in range(count):
        kind = index % 4
        if kind == 0:
            texts.append(chooser.choice(VOCABULARY[:20]))
        elif kind == 1:
            texts.append(chooser.choice(VOCABULARY[20:]))
        elif kind == 2:
            texts.append(" ".join(chooser.sample(VOCABULARY, 2)))
        else:
            texts.append(f"topic{chooser.randrange(max(1, entries // 200))}")
    return texts


def run(sizes, workdir, progress):
    """
    @return: C{messages}, C{p50_ms}, C{startup_s}, C{rss_mb}.
    """
    count = sizes.search_entries
    data_dir = os.path.join(workdir, "search")
    progress(f"building a store of {count:,} signed entries")
    started = time.perf_counter()
    path = build_store(data_dir, count, progress)
    build_s = time.perf_counter() - started
    store_mb = os.path.getsize(path) / 1e6
    with NodeGroup(workdir) as group:
        progress("starting a node on it")
        node = group.add("searcher", *loopback_args(), data_dir=data_dir).start()
        console = group.console(node)
        texts = queries(sizes.search_queries, count)
        progress(f"timing {len(texts)} /search commands")
        times_ms, matches, refused = [], [], 0
        for text in texts:
            start = len(console.received)
            sent = time.perf_counter()
            console.send(f"/search {text}")
            match = console.wait_for(SEARCH_DONE, start)
            times_ms.append((time.perf_counter() - sent) * 1000)
            if match.group(1) is None:
                refused += 1
            else:
                matches.append(int(match.group(1)))
            console.received = b""
        memory = node.memory_kb()
    return measured(
        messages=count,
        p50_ms=round(percentile(times_ms, 0.5), 2),
        p90_ms=round(percentile(times_ms, 0.9), 2),
        max_ms=round(max(times_ms), 2),
        queries=len(texts),
        mean_results=round(sum(matches) / len(matches), 1) if matches else None,
        refused_too_broad=refused,
        startup_s=round(node.started_s, 3),
        rss_mb=round(memory["VmRSS"] / 1024, 1) if memory else None,
        peak_rss_mb=round(memory["VmHWM"] / 1024, 1) if memory else None,
        store_mb=round(store_mb, 1),
        build_s=round(build_s, 1),
    )
