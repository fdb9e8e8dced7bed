"""
Live delivery over a simulated 32-node network (L{p2pchat.testing.live_tree}):
the fan-out scenario of the bench (authors taking turns, a post every
50 ms) on a simulated clock, with nodes sharing two simulated cores.
"""

from twisted.trial.unittest import SynchronousTestCase

from p2pchat.testing.live_tree import LiveTree


def run(seed, entry_cost_s):
    tree = LiveTree(nodes=32, seed=seed, entry_cost_s=entry_cost_s)
    tree.posts(50, 0.05)
    return tree


class LiveTreeTests(SynchronousTestCase):
    def grafts(self, tree):
        return sum(node.replicator.counts["grafted"] for node in tree.nodes)

    def test_quiet_network_is_one_tree(self):
        """
        With little load (0.5 ms of work an entry), the first post's
        duplicates prune the links to a tree every node is on: every
        delivery is pushed (no graft), within 50 simulated ms, with about
        one copy per node per post.
        """
        for seed in (1, 2):
            tree = run(seed, 0.0005)
            latencies = tree.latencies_s()
            self.assertEqual(len(latencies), 50 * 31)
            self.assertEqual(self.grafts(tree), 0)
            self.assertLess(latencies[-1], 0.05)
            self.assertLess(tree.redundancy(), 1.1)

    def test_busy_network_stays_on_the_tree(self):
        """
        With 1 ms of work an entry (the two cores half busy), concurrent
        posts make nodes prune links other authors' posts needed.  A node
        keeps its last eager link, takes back a link a first copy came
        on, and grafts at once when cut off, so every delivery takes
        under a simulated second (it took over 2 s with each duplicate
        pruning its link and a fixed 1 s graft timeout).
        """
        tree = run(2, 0.001)
        latencies = tree.latencies_s()
        self.assertEqual(len(latencies), 50 * 31)
        self.assertLess(latencies[-1], 1.0)
        self.assertLess(tree.redundancy(), 1.5)
