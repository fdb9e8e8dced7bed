"""
membership: gossip convergence, failure detection and false positives,
simulated.

C{membership_nodes} instances of the sans-IO membership state machine
(C{p2pchat.mesh.membership}, simulated by C{p2pchat.testing.scenarios}) run in this
process over in-memory links, driven by a simulated clock:

  - C{rounds_to_converge}: gossip rounds from start (each node knowing
    one other) until every node knows every node;
  - C{detect_s}: simulated seconds from killing one node until every
    other node shows it as dead (or suspect);
  - C{false_positives}: live nodes that any node suspected or declared
    dead over C{membership_minutes} simulated minutes with none killed.

The simulation itself belongs to the membership module, which knows its
own inputs and timers: this scenario calls
C{p2pchat.testing.scenarios.simulate(nodes=N, seed=S, kill_after_s=K,
watch_s=W)}, which must return a mapping with the three numbers above
(and may add more, such as C{rounds}).  A build without the module, or
whose module has no C{simulate}, reports C{unsupported} and says which.
"""

import importlib
import math
import time

from p2pchat.bench.results import measured, unsupported

KEYS = ("nodes", "rounds_to_converge", "detect_s", "false_positives")
REQUIRED = ("rounds_to_converge", "detect_s", "false_positives")
GOAL_DETECT_S = 5.0
SEED = 4


def goal_rounds(nodes: int) -> float:
    """
    @return: the most gossip rounds convergence may take: log2(N) + 3.
    """
    return math.log2(nodes) + 3


def run(sizes, workdir, progress):
    """
    @return: C{nodes}, C{rounds_to_converge}, C{detect_s},
        C{false_positives}.
    """
    nodes = sizes.membership_nodes
    try:
        module = importlib.import_module("p2pchat.testing.scenarios")
    except ImportError as e:
        return unsupported(
            f"there is no p2pchat.testing.scenarios module ({e})", KEYS, nodes=nodes
        )
    simulate = getattr(module, "simulate", None)
    if simulate is None:
        return unsupported(
            "p2pchat.testing.scenarios has no simulate(nodes, seed, kill_after_s, "
            "watch_s) for the bench to drive",
            KEYS,
            nodes=nodes,
        )
    progress(f"simulating {nodes} nodes for {sizes.membership_minutes:g} minutes")
    started = time.perf_counter()
    outcome = dict(
        simulate(
            nodes=nodes,
            seed=SEED,
            kill_after_s=60.0,
            watch_s=sizes.membership_minutes * 60,
        )
    )
    missing = [key for key in REQUIRED if key not in outcome]
    if missing:
        return unsupported(
            f"p2pchat.testing.scenarios.simulate returned no {', '.join(missing)}",
            KEYS,
            nodes=nodes,
        )
    return measured(
        **outcome,
        nodes=nodes,
        simulated_minutes=sizes.membership_minutes,
        wall_s=round(time.perf_counter() - started, 2),
    )
