"""
Tests for C{p2pchat.bench}'s pure helpers (the whole bench runs in
C{tests.integration.test_bench}).

No number is checked against a goal: benchmarks are not timed tests.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.bench import results
from p2pchat.bench.attacks import bound_mib
from p2pchat.bench.runner import judge


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
            "fanout": {"nodes": 32, "p99_ms": 150.0, "floor_p99_ms": 40.0, "redundancy": None,
                       "delivered": 1.0},
            "search": {"messages": 2_000, "p50_ms": 1.0, "rss_mb": 50.0},
        }
        judge(report)
        live = report["live_throughput"]
        self.assertEqual(live["ratio_to_verify_limit"], 0.3)
        self.assertEqual(live["ratio_to_raw_line_throughput"], 0.006)
        # The live goal is 0.7 of the verify ceiling of the same run.
        self.assertIs(live["meets_goal"], False)
        self.assertIsNone(report["catchup"]["meets_goal"])
        self.assertIs(report["fanout"]["meets_goal"], False)
        self.assertEqual(report["fanout"]["ratio_to_floor"], 3.75)
        self.assertIsNone(report["search"]["meets_goal"])
        self.assertIn("1,000,000 entries", report["search"]["goal_note"])
        self.assertEqual(report["verify_limit"]["decode_entry_ratio_to_verify_limit"], 0.75)

    def test_judge_live_at_the_verify_ratio(self):
        """
        Live throughput meets its goal at 0.7 of the verify ceiling, every
        message delivered.
        """
        report = {
            "verify_limit": {"value": 10_000},
            "live_throughput": {"value": 7_000, "messages": 5_000, "delivered": 1.0},
        }
        judge(report)
        self.assertIs(report["live_throughput"]["meets_goal"], True)

    def test_judge_burst(self):
        """
        A burst is related to its goal (0.25 s + N / (0.7 x verify_limit))
        and to seed S1's rate in the same run; it meets the goal only
        within that time, at 5 x S1 or more, every line delivered.
        """
        def burst(seconds, s1_per_s, delivered=1.0, messages=1000):
            report = {
                "verify_limit": {"value": 10_000},
                "burst": {"seconds": seconds, "messages": messages, "delivered": delivered,
                          "value": round(messages / seconds), "seed_s1_msg_per_s": s1_per_s},
            }
            judge(report)
            return report["burst"]

        result = burst(0.3, 400)
        self.assertEqual(result["goal_s"], 0.393)
        self.assertEqual(result["ratio_to_goal"], 0.763)
        self.assertEqual(result["ratio_to_seed_s1"], 8.332)
        self.assertEqual(result["ratio_to_verify_limit"], 0.333)
        self.assertIs(result["meets_goal"], True)
        self.assertIs(burst(0.4, 400)["meets_goal"], False)
        self.assertIs(burst(0.3, 800)["meets_goal"], False)
        self.assertIs(burst(0.3, 400, delivered=0.99)["meets_goal"], False)
        self.assertIsNone(burst(0.03, 40, messages=100)["meets_goal"])
        self.assertIsNone(burst(0.3, None)["meets_goal"])

    def test_judge_catchup_multi(self):
        """
        Catch-up from three nodes is related to the verify ceiling, and
        meets its goal only with at most 10 % duplicates and every entry.
        """
        def judged(**changes):
            result = {"value": 4000, "entries": 20_000, "received": 20_000,
                      "duplicate_fraction": 0.05}
            result.update(changes)
            report = {"verify_limit": {"value": 8000}, "catchup_multi": result}
            judge(report)
            return result

        self.assertEqual(judged()["ratio_to_verify_limit"], 0.5)
        self.assertIs(judged()["meets_goal"], True)
        self.assertIs(judged(duplicate_fraction=0.11)["meets_goal"], False)
        self.assertIs(judged(received=19_999)["meets_goal"], False)
        self.assertIsNone(judged(duplicate_fraction=None)["meets_goal"])

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
