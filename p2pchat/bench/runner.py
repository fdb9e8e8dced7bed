"""
Run the scenarios, relate each result to its ceiling and goal, and print
the table.
"""

import os
import sys
import time
import traceback
from typing import Callable, Dict, List, Optional

from p2pchat.bench import (
    attacks,
    burst,
    catchup,
    catchup_multi,
    fanout,
    fanout_loaded,
    flood,
    live,
    membership,
    raw_lines,
    rooms,
    search,
    verify,
)
from p2pchat.bench.machine import describe_machine
from p2pchat.bench.results import ERROR, ratio

FANOUT_KEYS = ("nodes", "p50_ms", "p99_ms", "floor_p99_ms", "redundancy", "delivered")
# The scenarios in the order they run (the ceilings first), and the keys
# every result has, numbers or None.
SCENARIOS = [
    ("raw_line_throughput", raw_lines, ("value",)),
    ("verify_limit", verify, ("value",)),
    ("catchup", catchup, ("value", "entries", "peak_rss_mb")),
    ("catchup_multi", catchup_multi, catchup_multi.KEYS),
    ("live_throughput", live, ("value", "messages", "delivered")),
    ("burst", burst, ("seconds", "first_ms", "messages", "delivered", "seed_s1_msg_per_s")),
    ("fanout", fanout, FANOUT_KEYS),
    ("fanout_loaded", fanout_loaded, FANOUT_KEYS),
    ("membership", membership, ("nodes", "rounds_to_converge", "detect_s", "false_positives")),
    ("search", search, ("messages", "p50_ms", "startup_s", "rss_mb")),
    ("rooms", rooms, ("messages", "rooms", "history_p50_ms", "search_p50_ms")),
    ("flood_chat", flood, ("flood_ms", "quiet_ms", "entries", "stored")),
    ("attacks", attacks, attacks.KEYS),
]
REQUIRED_KEYS = {name: keys for name, _, keys in SCENARIOS}


def _all(*conditions: Optional[bool]) -> Optional[bool]:
    """
    @return: C{False} if any condition is false, else C{None} if any is
        unknown, else C{True}.
    """
    if any(condition is False for condition in conditions):
        return False
    if any(condition is None for condition in conditions):
        return None
    return True


def _at_most(value, bound) -> Optional[bool]:
    return None if value is None else value <= bound


def _at_least(value, bound) -> Optional[bool]:
    return None if value is None else value >= bound


def _sized(result: dict, size, goal_size: int, unit: str) -> Optional[bool]:
    """
    The goals are set for given sizes: below that size, a result neither
    meets nor misses its goal.  Say so in the result.

    @return: C{None} when C{size} is below C{goal_size}, else C{True}.
    """
    if size is not None and size >= goal_size:
        return True
    had = f"{size:,}" if isinstance(size, int) else "none"
    result["goal_note"] = f"the goal is set for {goal_size:,} {unit}; this run had {had}"
    return None


def judge(results: Dict[str, dict]) -> None:
    """
    Add to each result its ratio to its ceiling (where one applies), its
    goal, and whether it was met (C{None} when unknown).
    """
    lines_per_s = results.get("raw_line_throughput", {}).get("value")
    verify_per_s = results.get("verify_limit", {}).get("value")
    for name in ("catchup", "catchup_multi", "live_throughput", "burst"):
        result = results.get(name)
        if result is not None:
            result["ratio_to_verify_limit"] = ratio(result.get("value"), verify_per_s)
            result["ratio_to_raw_line_throughput"] = ratio(result.get("value"), lines_per_s)
    verify_result = results.get("verify_limit")
    if verify_result is not None:
        verify_result["ratio_to_raw_line_throughput"] = ratio(verify_per_s, lines_per_s)
        decode = verify_result.get("decode_entry_per_s")
        verify_result["decode_entry_ratio_to_verify_limit"] = ratio(decode, verify_per_s)
        decode_ratio = ratio(verify_result.get("decode_per_s"), verify_per_s)
        verify_result["decode_ratio_to_verify_limit"] = decode_ratio
        verify_result["decode_goal"] = (
            f"decoding (all but the signature check) at least "
            f"{verify.GOAL_DECODE_RATIO:g} x verify_limit"
        )
        verify_result["meets_decode_goal"] = _at_least(decode_ratio, verify.GOAL_DECODE_RATIO)

    result = results.get("catchup")
    if result is not None:
        goal_ratio = result.get("cores_idle_ratio_goal") or catchup.GOAL_RATIO_TO_VERIFY
        result["goal"] = (
            f"at least {catchup.GOAL_PER_S} entries/s and at least "
            f"{goal_ratio:g} of verify_limit ({catchup.GOAL_RATIO_IDLE_CORE:g} when a "
            f"second core was idle)"
        )
        ratio_to_verify = result.get("ratio_to_verify_limit")
        result["meets_goal"] = _all(
            _at_least(result.get("value"), catchup.GOAL_PER_S),
            _at_least(ratio_to_verify, goal_ratio),
            None if result.get("value") is None else result.get("received") == result["entries"],
            _sized(result, result.get("entries"), catchup.GOAL_MIN_ENTRIES, "entries"),
        )
    result = results.get("catchup_multi")
    if result is not None:
        result["goal"] = (
            f"at most {catchup_multi.GOAL_DUPLICATE_FRACTION:g} of the entry frames "
            f"received are duplicates, catching up from {catchup_multi.SOURCES} nodes at once"
        )
        result["meets_goal"] = _all(
            _at_most(result.get("duplicate_fraction"), catchup_multi.GOAL_DUPLICATE_FRACTION),
            None if result.get("value") is None else result.get("received") == result["entries"],
        )
    result = results.get("live_throughput")
    if result is not None:
        result["goal"] = (
            f"at least {live.GOAL_RATIO_TO_VERIFY:g} of verify_limit, every one delivered"
        )
        result["meets_goal"] = _all(
            _at_least(result.get("ratio_to_verify_limit"), live.GOAL_RATIO_TO_VERIFY),
            _at_least(result.get("delivered"), 1.0),
            _sized(result, result.get("messages"), live.GOAL_MESSAGES, "messages"),
        )
    result = results.get("burst")
    if result is not None:
        _judge_burst(result, verify_per_s)
    for name in ("fanout", "fanout_loaded"):
        result = results.get(name)
        if result is None:
            continue
        result["ratio_to_floor"] = ratio(result.get("p99_ms"), result.get("floor_p99_ms"))
        result["goal"] = (
            f"p99 at most {fanout.GOAL_RATIO_TO_FLOOR:g} x the LineReceiver floor on 32 "
            f"nodes, at most {fanout.GOAL_COPIES:g} copies per node per message, "
            "all delivered"
        )
        result["meets_goal"] = _all(
            _at_most(result.get("ratio_to_floor"), fanout.GOAL_RATIO_TO_FLOOR),
            _at_most(result.get("redundancy"), fanout.GOAL_COPIES),
            _at_least(result.get("delivered"), 1.0),
            _sized(result, result.get("nodes"), fanout.GOAL_NODES, "nodes"),
        )
    result = results.get("membership")
    if result is not None and result.get("nodes"):
        bound = membership.goal_rounds(result["nodes"])
        result["goal"] = (
            f"converge in at most log2(N)+3 = {bound:.1f} rounds, detect a failure "
            f"in at most {membership.GOAL_DETECT_S:g} s, no false positives"
        )
        result["ratio_to_round_bound"] = ratio(result.get("rounds_to_converge"), bound)
        result["meets_goal"] = _all(
            _at_most(result.get("rounds_to_converge"), bound),
            _at_most(result.get("detect_s"), membership.GOAL_DETECT_S),
            _at_most(result.get("false_positives"), 0),
        )
    result = results.get("search")
    if result is not None:
        result["goal"] = (
            f"p50 at most {search.GOAL_P50_MS:g} ms and at most "
            f"{search.GOAL_RSS_MB:g} MB resident at 1,000,000 entries"
        )
        result["meets_goal"] = _all(
            _at_most(result.get("p50_ms"), search.GOAL_P50_MS),
            _at_most(result.get("rss_mb"), search.GOAL_RSS_MB),
            _sized(result, result.get("messages"), search.GOAL_ENTRIES, "entries"),
        )
    result = results.get("rooms")
    if result is not None:
        result["goal"] = (
            f"/history #room {rooms.HISTORY_LIMIT} and /search #room WORD p50 at most "
            f"{rooms.GOAL_P50_MS:g} ms at 1,000,000 entries across 1,000 rooms"
        )
        result["history_ratio_to_goal"] = ratio(result.get("history_p50_ms"), rooms.GOAL_P50_MS)
        result["search_ratio_to_goal"] = ratio(result.get("search_p50_ms"), rooms.GOAL_P50_MS)
        result["meets_goal"] = _all(
            _at_most(result.get("history_p50_ms"), rooms.GOAL_P50_MS),
            _at_most(result.get("search_p50_ms"), rooms.GOAL_P50_MS),
            _sized(result, result.get("messages"), rooms.GOAL_ENTRIES, "entries"),
            _sized(result, result.get("rooms"), rooms.GOAL_ROOMS, "rooms"),
        )
    result = results.get("flood_chat")
    if result is not None:
        result["goal"] = (
            f"a chat line crosses in at most {flood.GOAL_FLOOD_MS / 1000:g} s while a "
            "raw peer floods, and every flooded entry is stored"
        )
        result["ratio_to_quiet"] = ratio(result.get("flood_ms"), result.get("quiet_ms"))
        result["meets_goal"] = _all(
            _at_most(result.get("flood_ms"), flood.GOAL_FLOOD_MS),
            _at_least(result.get("stored"), 1.0),
        )
    if results.get("attacks") is not None:
        attacks.judge(results["attacks"])


def _judge_burst(result: dict, verify_per_s) -> None:
    goal_s = burst.goal_seconds(result.get("messages") or 0, verify_per_s)
    result["goal_s"] = goal_s
    result["ratio_to_goal"] = ratio(result.get("seconds"), goal_s)
    result["ratio_to_seed_s1"] = ratio(result.get("value"), result.get("seed_s1_msg_per_s"))
    result["goal"] = (
        f"stored at the linked node within {burst.GOAL_FIXED_S:g} s + N / "
        f"({burst.GOAL_RATIO:g} x verify_limit), at least {burst.GOAL_TIMES_SEED_S1:g} x "
        "seed S1's messages/s in the same run, every line delivered"
    )
    result["meets_goal"] = _all(
        _at_most(result.get("ratio_to_goal"), 1.0),
        _at_least(result.get("ratio_to_seed_s1"), burst.GOAL_TIMES_SEED_S1),
        _at_least(result.get("delivered"), 1.0),
        _sized(result, result.get("messages"), burst.GOAL_LINES, "lines"),
    )


def run_all(
    sizes,
    workdir: str,
    only: Optional[List[str]] = None,
    log: Callable[[str], None] = lambda text: print(text, file=sys.stderr, flush=True),
) -> Dict[str, object]:
    """
    Run every scenario (or those named in C{only}) and judge the results.

    @return: C{{"machine": ..., "sizes": ..., "results": ...}}.
    """
    chosen = [entry for entry in SCENARIOS if not only or entry[0] in only]
    results: Dict[str, dict] = {}
    started = time.perf_counter()
    for number, (name, module, keys) in enumerate(chosen, 1):
        prefix = f"[{number}/{len(chosen)} {name}]"

        def progress(text, prefix=prefix):
            log(f"{time.perf_counter() - started:7.1f}s {prefix} {text}")

        progress("starting")
        scenario_started = time.perf_counter()
        # Each scenario gets its own directory: no node sees another's data.
        scenario_dir = os.path.join(workdir, name)
        os.makedirs(scenario_dir, mode=0o700, exist_ok=True)
        try:
            result = module.run(sizes, scenario_dir, progress)
        except Exception as e:
            log(traceback.format_exc())
            result = {key: None for key in keys}
            result.update(status=ERROR, reason=f"{type(e).__name__}: {e}")
        for key in keys:
            result.setdefault(key, None)
        result["wall_s"] = round(time.perf_counter() - scenario_started, 1)
        results[name] = result
        progress(f"{result['status']}: {result.get('reason') or summary(name, result)}")
    judge(results)
    return {
        "machine": describe_machine(),
        "sizes": sizes.name,
        "wall_s": round(time.perf_counter() - started, 1),
        "results": results,
    }


def _n(value, unit="", digits=0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and digits:
        return f"{value:,.{digits}f}{unit}"
    return f"{round(value):,}{unit}"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def summary(name: str, result: dict) -> str:
    """
    @return: one line that says what C{result} measured.
    """
    if result.get("status") in ("unsupported", "error"):
        return result["status"] + " (see below)"
    if name == "raw_line_throughput":
        return f"{_n(result['value'])} lines/s ({result.get('mb_per_s')} MB/s)"
    if name == "verify_limit":
        return (
            f"{_n(result['value'])} verifications/s; decode_entry "
            f"{_n(result.get('decode_entry_per_s'))}/s; decode "
            f"{_n(result.get('decode_per_s'))}/s"
        )
    if name == "catchup":
        return (
            f"{_n(result['value'])} entries/s over {_n(result['entries'])} entries, "
            f"peak RSS {_n(result['peak_rss_mb'], ' MB', 1)}, "
            f"{_n(result.get('idle_cores'), '', 2)} cores idle before"
        )
    if name == "catchup_multi":
        return (
            f"{_n(result['value'])} entries/s over {_n(result['entries'])} entries from "
            f"{result.get('sources', 3)} nodes, duplicates {_pct(result['duplicate_fraction'])}"
        )
    if name == "live_throughput":
        return (
            f"{_n(result['value'])} messages/s over {_n(result['messages'])}, "
            f"delivered {_pct(result['delivered'])}"
        )
    if name == "burst":
        return (
            f"{_n(result['messages'])} lines stored in {_n(result['seconds'], ' s', 3)} "
            f"(first {_n(result['first_ms'], ' ms', 1)}), "
            f"{_n(result.get('ratio_to_goal'), ' of goal', 2)}; seed S1 "
            f"{_n(result['seed_s1_msg_per_s'], ' msg/s')}, "
            f"x{_n(result.get('ratio_to_seed_s1'), '', 1)}"
        )
    if name in ("fanout", "fanout_loaded"):
        return (
            f"{result['nodes']} nodes: p50 {_n(result['p50_ms'], ' ms', 1)}, "
            f"p99 {_n(result['p99_ms'], ' ms', 1)} (floor "
            f"{_n(result['floor_p99_ms'], ' ms', 1)}), copies/node/message "
            f"{_n(result['redundancy'], '', 2)}, delivered {_pct(result['delivered'])}"
        )
    if name == "membership":
        return (
            f"{result['nodes']} nodes: {_n(result['rounds_to_converge'], '', 1)} rounds, "
            f"detect {_n(result['detect_s'], ' s', 1)}, "
            f"{_n(result['false_positives'])} false positives"
        )
    if name == "search":
        return (
            f"{_n(result['messages'])} entries: p50 {_n(result['p50_ms'], ' ms', 2)}, "
            f"start {_n(result['startup_s'], ' s', 2)}, RSS {_n(result['rss_mb'], ' MB', 1)}"
        )
    if name == "rooms":
        return (
            f"{_n(result['messages'])} entries in {_n(result['rooms'])} rooms: history p50 "
            f"{_n(result['history_p50_ms'], ' ms', 2)}, search p50 "
            f"{_n(result['search_p50_ms'], ' ms', 2)}"
        )
    if name == "flood_chat":
        return (
            f"chat under a {_n(result['entries'])}-entry flood "
            f"{_n(result['flood_ms'], ' ms', 1)} (quiet {_n(result['quiet_ms'], ' ms', 1)}), "
            f"stored {_pct(result['stored'])}"
        )
    if name == "attacks":
        return (
            f"{_n(result['attacks_run'])} attacks: worst turn "
            f"{_n(result['worst_turn_ms'], ' ms', 1)}, worst RSS growth "
            f"{_n(result['worst_rss_growth_mib'], ' MiB', 1)}, "
            f"{_n(result['not_serving'])} not serving"
        )
    return ""


def _ceiling_text(result: dict) -> str:
    parts = []
    for key, label in (
        ("ratio_to_verify_limit", "verify"),
        ("ratio_to_raw_line_throughput", "raw lines"),
        ("ratio_to_round_bound", "round bound"),
        ("ratio_to_quiet", "quiet chat"),
        ("ratio_to_floor", "floor"),
    ):
        if result.get(key) is not None:
            parts.append(f"{result[key]:.3f} of {label}")
    return ", ".join(parts) or "-"


def table(report: Dict[str, object]) -> str:
    """
    @return: the results as a plain-text table.
    """
    goal_text = {True: "met", False: "missed", None: "-"}
    rows = [("scenario", "status", "result", "vs ceiling", "goal")]
    for name, result in report["results"].items():
        rows.append(
            (
                name,
                result["status"],
                summary(name, result),
                _ceiling_text(result),
                goal_text[result.get("meets_goal")] if "goal" in result else "-",
            )
        )
    widths = [max(len(row[column]) for row in rows) for column in range(4)]
    lines = []
    for row in rows:
        cells = [row[column].ljust(widths[column]) for column in range(4)]
        lines.append("  ".join(cells + [row[4]]).rstrip())
    lines.append("")
    for name, result in report["results"].items():
        if result.get("reason"):
            lines.append(f"{name}: {result['status']}: {result['reason']}")
        for key, reason in result.get("unsupported_fields", {}).items():
            lines.append(f"{name}.{key}: {reason}")
    if report["results"].get("attacks", {}).get("attacks"):
        lines += ["", attacks.table(report["results"]["attacks"])]
    machine = report["machine"]
    lines.append("")
    lines.append(
        f"{report['sizes']} run on {machine['cpu']}, {machine['usable_cores']} core(s), "
        f"{machine['ram_mb']} MB; Python {machine['python']}, Twisted "
        f"{machine['twisted']}, PyNaCl {machine['pynacl']}; {report['wall_s']} s"
    )
    return "\n".join(lines)
