"""
Tests for C{p2pchat.bench}: the whole bench runs with tiny sizes, so it
cannot rot (its pure helpers are tested in C{tests.unit.test_bench_helpers}).

No number is checked against a goal: benchmarks are not timed tests.
"""

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import p2pchat
from p2pchat.bench.attacks import ATTACKS
from p2pchat.bench.runner import REQUIRED_KEYS

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
        self.assertBurst(report["results"]["burst"])

    def assertBurst(self, result):
        """
        The C{burst} scenario stores every line at the linked node and
        relates its time to the goal and its rate to seed S1's, measured
        beside it.
        """
        self.assertEqual(result["status"], "measured")
        self.assertEqual(result["delivered"], 1.0)
        self.assertEqual(result["seed_s1_delivered"], 1.0)
        for key in ("seconds", "first_ms", "goal_s", "ratio_to_goal", "seed_s1_msg_per_s",
                    "ratio_to_seed_s1", "ratio_to_verify_limit"):
            self.assertTrue(_is_number(result[key]), f"burst.{key} = {result[key]!r}")
        self.assertIn(result["meets_goal"], (False, None))  # tiny: below the goal's size

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
