"""
attacks: what each known attack costs a real node (issue #10).

For every attack a fresh node, C{target}, is started on a copy of one
store (C{attack_store_authors} one-entry authors and one 4,000-character
entry) with an honest node, C{witness}, linked to it.  A raw hostile
client (L{p2pchat.bench.hostile}) then runs the attack for
C{attack_s} seconds, sampling the target's resident memory as it goes.
While the attack's sockets are still open the scenario reads the
target's C{/status} and says a chat line on its console, which the witness
must show (C{serving}); then it closes them and counts the target's file
descriptors.  A fresh node per attack, because C{longest_reactor_turn_ms}
is a running maximum since start; it includes the node's own start-up,
which is also reported on its own (C{turn_before_ms}).

Per attack:

  - C{longest_reactor_turn_ms} and C{turn_ratio_to_250ms} (the goal);
  - C{rss_growth_mib}: the largest resident size sampled during the
    attack (and just after it) less the size just before, against
    C{bound_mib}, the documented bound of docs/security.md ("Memory
    bounds"): 7.125 MiB per hostile link held at once (128 KiB of input,
    4 MiB of streamed batch, 1 MiB of paging and graft state, 2 MiB of
    unread small frames), 8 MiB of pending handshakes, 40 MiB of
    tables and 24 MiB of entries in verification, at most 560 MiB in all;
  - C{fds_after}: open descriptors once the attacker closed everything
    (C{fds_during}: the most seen while it held them);
  - C{log_lines}: what the target logged from the attack's start to the
    end (refusals are rate-limited), C{tracebacks} in its whole log;
  - C{serving}: the console answered and the witness got the line.
"""

import os
import re
import time

from p2pchat.bench import hostile
from p2pchat.bench.processes import NodeGroup, Timeout, loopback_args
from p2pchat.bench.results import measured
from p2pchat.bench.results import ratio as _ratio

GOAL_TURN_MS = 250.0
LINK_BOUND_MIB = 7.125
PENDING_BOUND_MIB = 8.0
TABLES_BOUND_MIB = 64.0
TOTAL_BOUND_MIB = 560.0
# Links that never read, for the attacks that want the node to queue.
SILENT_LINKS = 4
SETTLE_S = 1.0
SERVING_DEADLINE_S = 30.0
KEYS = ("attacks_run", "worst_turn_ms", "worst_rss_growth_mib", "not_serving")


def bound_mib(links: int) -> float:
    """
    @return: the documented memory bound for an attack holding C{links}
        hostile links at once.
    """
    return min(TOTAL_BOUND_MIB, links * LINK_BOUND_MIB + PENDING_BOUND_MIB + TABLES_BOUND_MIB)


def empty_final_summary(ctx):
    """
    An empty final C{summary} page, sent again as soon as the node
    answered the last (a new link when it closed one).
    """
    page = hostile.frame_line({"type": "summary", "after": None, "vv": {}, "final": True})
    rounds, sock = 0, None
    while time.monotonic() < ctx.until:
        if sock is None:
            sock = ctx.keep(hostile.link(ctx.address, "summarist"))
        rounds += 1
        if not hostile.push(sock, page, ctx.until) or not hostile.read_until(
            sock, b'{"type":"more"}', ctx.until
        ):
            ctx.forget(sock)
            sock = None
        ctx.sample()
    return {"links": 1, "rounds": rounds}


def ihave_sync_unknown(ctx):
    """
    C{ihave} with C{sync} and an unknown id, 20 a second on each of
    C{SILENT_LINKS} links that never read.
    """
    socks = [ctx.keep(hostile.link(ctx.address, f"nagger{n}")) for n in range(SILENT_LINKS)]
    sent = 0
    while time.monotonic() < ctx.until:
        line = hostile.frame_line({"type": "ihave", "ids": [os.urandom(32).hex()],
                                   "sync": True})
        for sock in socks:
            sent += hostile.push(sock, line, ctx.until)
        ctx.sample()
        time.sleep(0.05)
    return {"links": SILENT_LINKS, "bytes_sent": sent}


def graft_one_entry_500_times(ctx):
    """
    A C{graft} naming the large entry 500 times, sent again and again on
    C{SILENT_LINKS} links that never read.
    """
    line = hostile.frame_line({"type": "graft", "ids": [ctx.big.id] * 500})
    socks = [ctx.keep(hostile.link(ctx.address, f"grafter{n}")) for n in range(SILENT_LINKS)]
    sent = 0
    while time.monotonic() < ctx.until:
        for sock in socks:
            sent += hostile.push(sock, line, min(ctx.until, time.monotonic() + 0.05))
        ctx.sample()
    return {"links": SILENT_LINKS, "bytes_sent": sent}


def _flood(ctx, payload: bytes, name: str):
    """
    Write C{payload} on one link as fast as the node reads it, reading
    what the node sends, until it is all sent or the time is up.
    """
    sock = ctx.keep(hostile.link(ctx.address, name))
    sent = 0
    while sent < len(payload) and time.monotonic() < ctx.until:
        sent += hostile.push(sock, payload[sent:sent + 262144],
                             min(ctx.until, time.monotonic() + 0.1))
        if hostile.drain(sock) is None:
            break
        ctx.sample()
    return {"links": 1, "bytes_sent": sent, "sent_fraction": round(sent / len(payload), 3)}


def new_authors(ctx):
    """
    One entry each under C{attack_new_authors} new author ids.
    """
    return dict(_flood(ctx, ctx.payloads["authors"], "sybil"),
                count=ctx.sizes.attack_new_authors)


def gossip_rows(ctx):
    """
    C{attack_gossip_rows} gossip rows, each signed by a fresh key.
    """
    return dict(_flood(ctx, ctx.payloads["rows"], "gossiper"),
                count=ctx.sizes.attack_gossip_rows)


def idle_sockets(ctx):
    """
    C{attack_idle_sockets} TCP connections that never send a byte.
    """
    for _ in range(ctx.sizes.attack_idle_sockets):
        ctx.keep(hostile.connect(ctx.address))
    ctx.sample()
    while time.monotonic() < ctx.until:
        time.sleep(0.1)
        ctx.sample()
    return {"links": 0, "count": ctx.sizes.attack_idle_sockets}


def ping_flood(ctx):
    """
    1,000 C{ping} frames at once; again on a new link when it is closed.
    """
    pings = hostile.frame_line({"type": "ping"}) * 1000
    links = 0
    while time.monotonic() < ctx.until:
        sock = ctx.keep(hostile.link(ctx.address, "pinger"))
        links += 1
        hostile.push(sock, pings, ctx.until)
        hostile.read_until(sock, b"\x00never", min(ctx.until, time.monotonic() + 2.0))
        ctx.forget(sock)
        ctx.sample()
    return {"links": 1, "connections": links}


GARBAGE = [
    b"\x00\xff\x1b[31mnot json at all\r\n",
    b'{"type":"no such frame"}\n',
    b'{"type":"entry","entry":{"author":"' + b"A" * 64 + b'"}}\n',
    b"x" * 70_000,  # over wire.MAX_LINE_BYTES, no newline
]


def garbage_lines(ctx):
    """
    Garbage, unknown frames, bad entries and over-long lines, each on a
    new link (the node closes it), half of them before any hello.
    """
    sent = 0
    while time.monotonic() < ctx.until:
        line = GARBAGE[sent % len(GARBAGE)]
        if sent % 2:
            sock = ctx.keep(hostile.link(ctx.address, "garbler"))
        else:
            sock = ctx.keep(hostile.connect(ctx.address))
            sock.setblocking(False)
        hostile.push(sock, line, ctx.until)
        hostile.read_until(sock, b"\x00never", min(ctx.until, time.monotonic() + 2.0))
        ctx.forget(sock)
        sent += 1
        ctx.sample()
    return {"links": 1, "connections": sent}


ATTACKS = [
    ("empty_final_summary", empty_final_summary),
    ("ihave_sync_unknown", ihave_sync_unknown),
    ("graft_500_times", graft_one_entry_500_times),
    ("new_authors", new_authors),
    ("gossip_rows", gossip_rows),
    ("idle_sockets", idle_sockets),
    ("ping_flood", ping_flood),
    ("garbage_lines", garbage_lines),
]


class Context:
    """
    What an attack needs, and the sockets and memory samples it leaves.
    """

    def __init__(self, sizes, target, big, payloads, until):
        self.sizes, self.target, self.big, self.payloads = sizes, target, big, payloads
        self.address = target.peer_address
        self.until = until
        self.sockets = []
        self.peak_rss_kb = 0
        self.peak_fds = 0

    def keep(self, sock):
        self.sockets.append(sock)
        return sock

    def forget(self, sock):
        self.sockets.remove(sock)
        sock.close()

    def sample(self):
        self.peak_rss_kb = max(self.peak_rss_kb, self.target.memory_kb().get("VmRSS", 0))
        self.peak_fds = max(self.peak_fds, hostile.fds(self.target.pid) or 0)


def _status_or(console, fallback):
    """
    @return: the node's C{/status}, or C{fallback} if it does not answer.
    """
    try:
        return console.status()
    except (Timeout, OSError, ValueError):
        return fallback


def _check_serving(target_console, witness_console, text):
    """
    Read the target's C{/status}, then say C{text} on its console and wait
    for the witness to show it.

    @return: the status (empty if the console did not answer), whether the
        line arrived, and how long it took in ms (C{None} if it did not).
    """
    try:
        status = target_console.status()
    except (Timeout, OSError, ValueError):
        return {}, False, None
    start = len(witness_console.received)
    sent = time.perf_counter()
    target_console.send(text)
    try:
        witness_console.wait_for(re.compile(re.escape(f"<target> {text}".encode())),
                                 start, deadline_s=SERVING_DEADLINE_S)
    except (Timeout, OSError):
        return status, False, None
    return status, True, round((time.perf_counter() - sent) * 1000, 1)


def run_one(name, attack, sizes, workdir, store_dir, big, payloads, number):
    """
    Run one attack against a fresh target with a witness linked to it.

    @return: that attack's row.
    """
    with NodeGroup(os.path.join(workdir, name)) as group:
        data_dir = os.path.join(group.workdir, "target")
        hostile.copy_store(store_dir, data_dir)
        target = group.add("target", *loopback_args(), data_dir=data_dir).start()
        # The witness holds the same store: it has nothing to catch up but
        # the target's own feed (new feeds cost a budget per link).
        witness_dir = os.path.join(group.workdir, "witness")
        hostile.copy_store(store_dir, witness_dir)
        witness = group.add("witness", *loopback_args(), "--peer", target.peer_address,
                            data_dir=witness_dir).start()
        witness.wait_for_log(rb"link up with target")
        target_console, witness_console = group.console(target), group.console(witness)
        turn_before = float(target_console.status()["longest_reactor_turn_ms"])
        rss_before = target.memory_kb().get("VmRSS", 0)
        log_start = len(target.output)
        ctx = Context(sizes, target, big, payloads, time.monotonic() + sizes.attack_s)
        try:
            try:
                details = attack(ctx)
            except OSError as e:
                # The node refused or dropped what an attack needs (a new
                # link): say so in the row; serving is checked as usual.
                details = {"links": 1, "attack_error": f"{type(e).__name__}: {e}"}
            time.sleep(0.2)
            ctx.sample()
            status, serving, chat_ms = _check_serving(
                target_console, witness_console, f"still here after {name} {number}")
        finally:
            hostile.close_all(ctx.sockets)
        time.sleep(SETTLE_S)
        fds_after = hostile.fds(target.pid)
        log_lines = target.output[log_start:].count(b"\n")
        tracebacks = target.output.count(b"Traceback")
        if status:
            status = _status_or(target_console, status)
    turn = float(status["longest_reactor_turn_ms"]) if status else None
    growth = round(max(0, ctx.peak_rss_kb - rss_before) / 1024, 1)
    bound = bound_mib(details["links"])
    return dict(
        attack=name,
        longest_reactor_turn_ms=turn,
        turn_ratio_to_250ms=_ratio(turn, GOAL_TURN_MS),
        turn_before_ms=turn_before,
        rss_growth_mib=growth,
        bound_mib=bound,
        rss_ratio_to_bound=_ratio(growth, bound),
        rss_before_mib=round(rss_before / 1024, 1),
        fds_during=ctx.peak_fds,
        fds_after=fds_after,
        serving=serving,
        chat_ms=chat_ms,
        log_lines=log_lines,
        tracebacks=tracebacks,
        **details,
    )


def run(sizes, workdir, progress):
    """
    @return: the summary numbers and C{attacks}, one row per attack.
    """
    store_dir = os.path.join(workdir, "store")
    progress(f"building a store of {sizes.attack_store_authors:,} one-entry authors")
    big = hostile.build_attack_store(store_dir, sizes.attack_store_authors)
    progress(f"signing {sizes.attack_new_authors:,} new authors and "
             f"{sizes.attack_gossip_rows:,} gossip rows")
    payloads = {"authors": hostile.one_entry_authors(sizes.attack_new_authors),
                "rows": hostile.stranger_rows(sizes.attack_gossip_rows)}
    rows = []
    for number, (name, attack) in enumerate(ATTACKS, 1):
        progress(f"{name}: {sizes.attack_s:g} s against a fresh node")
        row = run_one(name, attack, sizes, workdir, store_dir, big, payloads, number)
        progress(f"  {format_row(row)}")
        rows.append(row)
    turns = [row["longest_reactor_turn_ms"] for row in rows]
    return measured(
        attacks=rows,
        attacks_run=len(rows),
        worst_turn_ms=None if None in turns else max(turns),
        worst_rss_growth_mib=max(row["rss_growth_mib"] for row in rows),
        not_serving=sum(1 for row in rows if not row["serving"]),
        seconds_per_attack=sizes.attack_s,
    )


def judge(result) -> None:
    """
    Add the goal and whether every attack met it.
    """
    result["goal"] = (f"every attack: longest reactor turn at most {GOAL_TURN_MS:g} ms, "
                      "RSS growth within the documented bound, still serving")
    rows = result.get("attacks") or []
    if not rows:
        result["meets_goal"] = None
        return
    if any(row["longest_reactor_turn_ms"] is None for row in rows):
        result["meets_goal"] = False
        return
    result["meets_goal"] = all(
        row["longest_reactor_turn_ms"] <= GOAL_TURN_MS
        and row["rss_growth_mib"] <= row["bound_mib"]
        and row["serving"]
        for row in rows
    )


def format_row(row) -> str:
    """
    @return: one attack's row as text.
    """
    turn = row["longest_reactor_turn_ms"]
    turn_text = "n/a" if turn is None else f"{turn:,.1f} ms ({row['turn_ratio_to_250ms']:.2f})"
    return (
        f"{row['attack']}: turn {turn_text}, RSS +{row['rss_growth_mib']:.1f} MiB "
        f"(bound {row['bound_mib']:g}), fds {row['fds_after']}, "
        f"serving {'yes' if row['serving'] else 'no'}"
    )


def table(result) -> str:
    """
    @return: the attack rows as a plain-text table.
    """
    rows = [("attack", "turn ms", "/250ms", "RSS +MiB", "bound", "fds after", "serving")]
    for row in result.get("attacks") or []:
        turn = row["longest_reactor_turn_ms"]
        rows.append((
            row["attack"],
            "n/a" if turn is None else f"{turn:,.1f}",
            "n/a" if turn is None else f"{row['turn_ratio_to_250ms']:.2f}",
            f"{row['rss_growth_mib']:.1f}",
            f"{row['bound_mib']:g}",
            str(row["fds_after"]),
            "yes" if row["serving"] else "no",
        ))
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip()
        for row in rows
    )
