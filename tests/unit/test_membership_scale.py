"""
Simulated networks of a few dozen nodes (L{p2pchat.testing.scenarios}):
traffic that does not grow with N, detection after a C{kill -9}, no false
positive under frame loss and pauses, and the simulator's byte count
matching the wire.  All time here is simulated; nothing is timed.
"""

import io
import json
import math
import sys

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.mesh.membership import ALIVE, DEAD, SUSPECT, admission, intake
from p2pchat.testing.scenarios import (
    chain,
    converge,
    detect,
    emulated_convergence,
    scale_point,
    scaled_budgets,
    storm,
)
from p2pchat.testing.simulation import Simulation


def quiet_bytes_per_node_s(nodes, seed=3, seconds=30.0):
    """
    @return: membership bytes sent per node per simulated second in a
        quiet network of C{nodes}, after it converged and settled.
    """
    sim = Simulation(seed=seed)
    chain(sim, nodes)
    converge(sim)
    sim.run(10.0)
    start = sim.bytes_sent
    sim.run(seconds)
    return (sim.bytes_sent - start) / nodes / seconds


class TrafficTests(SynchronousTestCase):
    def test_cost_per_node_does_not_grow_with_n(self):
        """
        Quiet, each node sends about the same whether the network has 48
        or 128 members (probes and bounded anti-entropy, no heartbeats;
        below 32 members anti-entropy sends fewer than its 32 rows):
        within 1.5 times, and under 2 KB/s.
        """
        small, large = quiet_bytes_per_node_s(48), quiet_bytes_per_node_s(128)
        self.assertLess(large, 1.5 * small)
        self.assertLess(large, 2048)

    def test_bytes_counted_as_on_the_wire(self):
        """
        Without C{wire_check} the simulator counts each frame's encoded
        size from its rows; with it, it encodes every frame: the same
        run counts the same bytes.
        """
        counts = []
        for wire_check in (False, True):
            sim = Simulation(seed=5, wire_check=wire_check)
            chain(sim, 12)
            converge(sim)
            sim.run(20.0)
            counts.append(sim.bytes_sent)
            self.assertEqual(sim.frame_errors, [])
        self.assertEqual(counts[0], counts[1])


class DetectionTests(SynchronousTestCase):
    def test_kill_dead_everywhere_within_goal(self):
        """
        A C{kill -9} is dead in every other node's view within 3 s plus
        log2 N gossip intervals (simulated), for three seeds.
        """
        nodes = 48
        goal = 3.0 + math.log2(nodes) * 0.2
        for seed in range(3):
            sim = Simulation(seed=seed)
            members = chain(sim, nodes)
            self.assertIsNotNone(converge(sim))
            sim.run(10.0)
            took = detect(sim, members[seed * 7])
            self.assertIsNotNone(took, seed)
            self.assertLessEqual(took, goal, seed)
            self.assertEqual(sim.false_alarms(), [])

    def test_paused_node_suspected_not_dead(self):
        """
        A node paused 3 s (links open, frames waiting) is suspected, but
        refutes when it resumes, before the suspicion times out: never
        dead, and alive everywhere after.
        """
        sim = Simulation(seed=2)
        members = chain(sim, 32)
        converge(sim)
        sim.run(10.0)
        since = sim.clock.seconds()
        victim = members[9]
        sim.pause(victim, 3.0)
        sim.run(8.0)
        states = {change[4] for change in sim.changes if change[0] >= since}
        self.assertNotIn(DEAD, states)
        self.assertIn(SUSPECT, states)
        self.assertTrue(sim.everyone_sees(victim.node_id, ALIVE))
        self.assertGreater(victim.membership.incarnation, 0)


class RecordingTests(SynchronousTestCase):
    def test_learned_only_counted_without_keep_learned(self):
        """
        Without C{keep_learned}, members learned alive (N^2 of them) are
        counted, not listed; every other change is listed as before.
        """
        runs = []
        for keep in (True, False):
            sim = Simulation(seed=4, keep_learned=keep)
            members = chain(sim, 10)
            converge(sim)
            sim.kill(members[3])
            sim.run(8.0)
            runs.append(sim)
        kept, counted = runs
        learned = [c for c in kept.changes if c[3] is None and c[4] == ALIVE]
        self.assertEqual(len(learned), 90)
        self.assertEqual(counted.learned, 90)
        self.assertEqual(kept.learned, 0)
        self.assertEqual(
            [c for c in kept.changes if c not in learned], counted.changes
        )
        self.assertIn(DEAD, {c[4] for c in counted.changes})


class EmulatedScaleTests(SynchronousTestCase):
    def test_chain_beyond_the_bursts_converges(self):
        """
        A chain of 40 nodes with a fiftieth of the budgets (a new-member
        burst of 20 per link: half the table, as 2,000 nodes meet the real
        burst of 1,000) converges within log2(2,000) + 3 rounds; with rows
        over a budget dropped instead of owed (as before), not within 60
        simulated seconds.
        """
        point = emulated_convergence(40, 50)
        self.assertEqual(point["emulated_nodes"], 2000)
        self.assertLessEqual(point["rounds_to_converge"], point["rounds_goal"])
        self.assertEqual(point["least_known"], 39)
        self.patch(intake, "OWED_ROWS_PER_LINK", 0)
        dropped = emulated_convergence(40, 50)
        self.assertIsNone(dropped["rounds_to_converge"])
        self.assertLess(dropped["least_known"], 39)

    def test_scaled_budgets_divided_then_restored(self):
        """
        Inside the block the budgets are divided; after it, even after an
        error, they are what they were.
        """
        burst, rate = admission.NEW_MEMBERS_BURST, admission.NEW_MEMBERS_PER_S
        with self.assertRaises(ZeroDivisionError):
            with scaled_budgets(10):
                self.assertEqual(admission.NEW_MEMBERS_BURST, burst // 10)
                self.assertEqual(admission.NEW_MEMBERS_PER_S, rate / 10)
                raise ZeroDivisionError("inside the block")
        self.assertEqual((admission.NEW_MEMBERS_BURST, admission.NEW_MEMBERS_PER_S), (burst, rate))


class StormTests(SynchronousTestCase):
    def test_no_false_positive_under_loss_and_pauses(self):
        """
        Two simulated minutes of 5 % frame loss with 1 % of the nodes (at
        least one) pausing 2 s every 2 s: no running node is declared
        dead, and afterwards everyone shows everyone alive.
        """
        sim = Simulation(seed=11)
        chain(sim, 40)
        converge(sim)
        sim.run(5.0)
        outcome = storm(sim, 120.0, drop_rate=0.05, paused=0.01)
        self.assertEqual(outcome["false_positives"], 0)
        self.assertEqual(outcome["pauses"], 60)
        sim.run(5.0)
        self.assertTrue(sim.converged())

    def test_scale_point(self):
        """
        One point of the C{--scale} curve, small: every number is there,
        and meets its goal.
        """
        point = scale_point(24, seed=2, steady_s=10.0, storm_s=20.0)
        self.assertEqual(point["nodes"], 24)
        self.assertLessEqual(point["rounds_to_converge"], point["rounds_goal"])
        self.assertLessEqual(point["detect_s"], point["detect_goal_s"])
        self.assertEqual(point["false_positives"], 0)
        self.assertLess(point["bytes_per_node_s"], 2048)
        self.assertGreater(point["frames_per_node_s"], 0)


class ScaleBenchTests(SynchronousTestCase):
    """
    C{python -m p2pchat.bench --scale --json F} (at a size made small).
    """

    def test_json_results_scale(self):
        from p2pchat.bench import __main__ as bench_main
        from p2pchat.bench import scale

        self.patch(scale, "FULL_SIZES", ((12, 4.0), (20, 4.0)))
        self.patch(scale, "EMULATED", ((12, 10),))
        self.patch(sys, "stdout", io.StringIO())
        self.patch(sys, "stderr", io.StringIO())
        path = self.mktemp()
        self.assertEqual(bench_main.main(["--scale", "--json", path]), 0)
        with open(path) as f:
            report = json.load(f)
        points = report["results"]["scale"]
        self.assertEqual([p["nodes"] for p in points], [12, 20])
        for point in points:
            for key in ("bytes_per_node_s", "rounds_to_converge", "detect_s", "false_positives"):
                self.assertIsNotNone(point[key], key)
            self.assertEqual(point["false_positives"], 0)
        self.assertIn("10,000", report["results"]["scale_note"])
        [emulated] = report["results"]["scale_emulated"]
        self.assertEqual((emulated["nodes"], emulated["emulated_nodes"]), (12, 120))
        self.assertLessEqual(emulated["rounds_to_converge"], emulated["rounds_goal"])
        self.assertIn("120 nodes  emulated (12 nodes, budgets / 10)", sys.stdout.getvalue())
        self.assertIn("cores", report["machine"])
        self.assertIn("membership at scale", sys.stdout.getvalue())
