"""
Tests for C{p2pchat.bench}: the whole bench runs with tiny sizes, so it
cannot rot, and its pure helpers do what they say.

No number is checked against a goal: benchmarks are not timed tests.
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import p2pchat
from p2pchat.bench import results
from p2pchat.bench.attacks import ATTACKS, bound_mib
from p2pchat.bench.runner import REQUIRED_KEYS, judge

MACHINE_KEYS = ("cpu", "cores", "ram_mb", "kernel", "python", "twisted", "pynacl")
# Plenty for the tiny sizes (about 40 s on a 2-core machine).
BENCH_TIMEOUT_S = 300


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class WholeBenchTests(SynchronousTestCase):
    """
    C{python -m p2pchat.bench --sizes tiny} from outside the checkout.
    """

    def test_tiny_run_reports_every_field(self):
        """
        Every scenario runs, and the JSON has every required field of every
        result: a number, or C{None} explained by an C{unsupported} status
        or an entry in C{unsupported_fields}.  No scenario fails with an
        error, and the ceilings are measured.
        """
        workdir = os.path.abspath(self.mktemp())
        os.makedirs(workdir)
        output = os.path.join(workdir, "bench.json")
        root = os.path.dirname(os.path.dirname(os.path.abspath(p2pchat.__file__)))
        path = os.environ.get("PYTHONPATH")
        env = dict(os.environ, PYTHONPATH=root + (os.pathsep + path if path else ""))
        finished = subprocess.run(
            [sys.executable, "-m", "p2pchat.bench", "--sizes", "tiny", "--json", output],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=BENCH_TIMEOUT_S,
        )
        log = finished.stdout.decode(errors="replace")
        self.assertEqual(finished.returncode, 0, log)
        with open(output) as report_file:
            report = json.load(report_file)

        for key in MACHINE_KEYS:
            self.assertIn(key, report["machine"])
        self.assertEqual(set(report["results"]), set(REQUIRED_KEYS))
        for name, keys in REQUIRED_KEYS.items():
            result = report["results"][name]
            self.assertIn(result["status"], ("measured", "incomplete", "unsupported"), name)
            for key in keys:
                value = result[key]
                if value is None:
                    explained = result["status"] == "unsupported" or key in result.get(
                        "unsupported_fields", {}
                    )
                    self.assertTrue(explained, f"{name}.{key} is null without a reason")
                else:
                    self.assertTrue(_is_number(value), f"{name}.{key} = {value!r}")
            if result["status"] == "unsupported":
                self.assertTrue(
                    result["reason"].startswith("not supported by this build: "), name
                )
        for ceiling in ("raw_line_throughput", "verify_limit"):
            self.assertEqual(report["results"][ceiling]["status"], "measured")
            self.assertGreater(report["results"][ceiling]["value"], 0)
        self.assertIn("raw_line_throughput", log)
        self.assertAttackRows(report["results"]["attacks"], log)

    def assertAttackRows(self, result, log):
        """
        The C{attacks} scenario has one row per attack, each with the
        per-attack fields as numbers (the turn may be C{None} only when
        the node stopped answering) and C{serving} a boolean; the table
        shows every attack.
        """
        self.assertEqual(result["status"], "measured")
        rows = result["attacks"]
        self.assertEqual([row["attack"] for row in rows], [name for name, _ in ATTACKS])
        self.assertEqual(result["attacks_run"], len(ATTACKS))
        for row in rows:
            for key in ("rss_growth_mib", "bound_mib", "fds_after"):
                self.assertTrue(_is_number(row[key]), f"{row['attack']}.{key} = {row[key]!r}")
            self.assertIsInstance(row["serving"], bool)
            for key in ("longest_reactor_turn_ms", "turn_ratio_to_250ms"):
                if row[key] is None:
                    self.assertFalse(row["serving"], f"{row['attack']}.{key} is null")
                else:
                    self.assertTrue(_is_number(row[key]), f"{row['attack']}.{key}")
            self.assertIn(row["attack"], log)
        self.assertIn(result["meets_goal"], (True, False))


class HelperTests(SynchronousTestCase):
    """
    The pure helpers behind the report.
    """

    def test_percentile_nearest_rank(self):
        """
        L{results.percentile} picks the nearest-rank value, and C{None} for
        no values.
        """
        values = list(range(1, 101))
        self.assertEqual(results.percentile(values, 0.5), 50)
        self.assertEqual(results.percentile(values, 0.99), 99)
        self.assertEqual(results.percentile([7], 0.99), 7)
        self.assertIsNone(results.percentile([], 0.5))

    def test_unsupported_has_no_numbers(self):
        """
        L{results.unsupported} sets every number to C{None} and says why.
        """
        result = results.unsupported("no catch-up", ("value", "entries"), waited_s=2.0)
        self.assertEqual(result["value"], None)
        self.assertEqual(result["entries"], None)
        self.assertEqual(result["waited_s"], 2.0)
        self.assertEqual(result["reason"], "not supported by this build: no catch-up")

    def test_judge_ratios_and_goals(self):
        """
        L{judge} relates throughput to the ceilings measured in the same
        run, and leaves a goal neither met nor missed when a number is
        unknown or the run was smaller than the goal's size.
        """
        report = {
            "raw_line_throughput": {"value": 1_000_000},
            "verify_limit": {"value": 20_000, "decode_entry_per_s": 15_000},
            "live_throughput": {"value": 6_000, "messages": 5_000, "delivered": 1.0},
            "catchup": {"value": None, "entries": None},
            "fanout": {"nodes": 32, "p99_ms": 150.0, "redundancy": None, "delivered": 1.0},
            "search": {"messages": 2_000, "p50_ms": 1.0, "rss_mb": 50.0},
        }
        judge(report)
        live = report["live_throughput"]
        self.assertEqual(live["ratio_to_verify_limit"], 0.3)
        self.assertEqual(live["ratio_to_raw_line_throughput"], 0.006)
        self.assertIs(live["meets_goal"], True)
        self.assertIsNone(report["catchup"]["meets_goal"])
        self.assertIs(report["fanout"]["meets_goal"], False)
        self.assertIsNone(report["search"]["meets_goal"])
        self.assertIn("1,000,000 entries", report["search"]["goal_note"])
        self.assertEqual(report["verify_limit"]["decode_entry_ratio_to_verify_limit"], 0.75)

    def test_judge_flood_chat(self):
        """
        The flood scenario is related to the quiet chat latency measured in
        the same run, and meets its goal only if the chat line crossed in
        time and the whole flood was stored.
        """
        report = {
            "flood_chat": {"flood_ms": 150.0, "quiet_ms": 5.0, "entries": 15_000, "stored": 1.0},
        }
        judge(report)
        self.assertEqual(report["flood_chat"]["ratio_to_quiet"], 30.0)
        self.assertIs(report["flood_chat"]["meets_goal"], True)
        report = {
            "flood_chat": {"flood_ms": 150.0, "quiet_ms": 5.0, "entries": 15_000,
                           "stored": 0.5},
        }
        judge(report)
        self.assertIs(report["flood_chat"]["meets_goal"], False)

    def test_judge_attacks(self):
        """
        The attacks goal is met only if every attack kept the longest
        reactor turn within 250 ms and memory within its bound, and the
        node still served; an attack whose turn is unknown misses it.
        """
        row = {"attack": "a", "longest_reactor_turn_ms": 100.0, "rss_growth_mib": 3.0,
               "bound_mib": 53.125, "serving": True}

        def judged(**changes):
            report = {"attacks": {"attacks": [row, dict(row, **changes)]}}
            judge(report)
            return report["attacks"]["meets_goal"]

        self.assertIs(judged(), True)
        self.assertIs(judged(longest_reactor_turn_ms=251.0), False)
        self.assertIs(judged(rss_growth_mib=60.0), False)
        self.assertIs(judged(serving=False), False)
        self.assertIs(judged(longest_reactor_turn_ms=None, serving=False), False)

    def test_attack_memory_bound(self):
        """
        The bound is the documented one: 7.125 MiB per hostile link, 8 MiB
        of pending handshakes, 40 MiB of tables and 24 MiB of entries in
        verification, at most 560 MiB.
        """
        self.assertEqual(bound_mib(0), 72.0)
        self.assertEqual(bound_mib(4), 100.5)
        self.assertEqual(bound_mib(200), 560.0)
