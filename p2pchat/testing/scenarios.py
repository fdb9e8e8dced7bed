# -*- test-case-name: tests.unit.test_membership_scale -*-
"""
Measurements of membership on a L{Simulation}, for C{python -m
p2pchat.bench}: L{simulate} (the C{membership} scenario),
L{scale_point} (one point of C{--scale}'s curve) and
L{emulated_convergence} (a chain under L{scaled_budgets}: a network past
the admission bursts at the memory of a small one).
"""

import math
import time
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional

from p2pchat.mesh.membership import DEAD, admission, dissemination, intake
from p2pchat.testing.simulation import SimNode, Simulation


def chain(sim: Simulation, nodes: int) -> List[SimNode]:
    """
    Start C{nodes} nodes as a chain: each links to the one before it.
    """
    members = [sim.add_node() for _ in range(nodes)]
    for i in range(1, nodes):
        sim.link(members[i], members[i - 1])
    return members


def converge(sim: Simulation, limit_s: float = 60.0) -> Optional[int]:
    """
    @return: the gossip rounds until every node lists every other as
        alive, or C{None} if not within C{limit_s}.
    """
    interval = sim.config.gossip_interval_s
    live = len(sim.running()) - 1

    def converged() -> bool:
        # Cheap first: every node must count everyone else alive.
        if any(n.membership.alive_count() < live for n in sim.running()):
            return False
        return sim.converged()

    took = sim.run_until(converged, limit_s, interval)
    return None if took is None else round(took / interval)


def detect(sim: Simulation, victim: SimNode, limit_s: float = 60.0) -> Optional[float]:
    """
    Kill C{victim} (its links drop, as after C{kill -9}).

    @return: simulated seconds until every other node shows it dead, or
        C{None} if not within C{limit_s}.
    """
    sim.kill(victim)
    took = sim.run_until(lambda: sim.everyone_sees(victim.node_id, DEAD), limit_s, 0.05)
    return None if took is None else round(took, 2)


def simulate(nodes: int, seed: int, kill_after_s: float, watch_s: float) -> Dict[str, object]:
    """
    Measure membership at default settings, for C{python -m p2pchat.bench}.

    C{nodes} nodes start as a chain (each knows only the one before it);
    the gossip rounds until every node lists every other as alive are
    counted.  The network then runs C{watch_s} simulated seconds with no
    failure, counting false alarms; then, after C{kill_after_s} more, one
    node is killed (its links drop) and the time until every other node
    shows it dead is measured.

    @return: C{rounds_to_converge}, C{detect_s}, C{false_positives},
        C{links_per_node} (min, max), C{rows_per_node_s} (gossip rows
        sent per node per simulated second while watching) and
        C{bytes_per_node_s}.
    """
    sim = Simulation(seed=seed)
    members = chain(sim, nodes)
    rounds = converge(sim)
    watch_from, rows_from, bytes_from = sim.clock.seconds(), sim.rows_sent, sim.bytes_sent
    sim.run(watch_s)
    watched = nodes * max(watch_s, 1e-9)
    rows_per_node_s = (sim.rows_sent - rows_from) / watched
    bytes_per_node_s = (sim.bytes_sent - bytes_from) / watched
    false_positives = len(sim.false_alarms(since=watch_from))
    sim.run(kill_after_s)
    detect_s = detect(sim, members[nodes // 2])
    degrees = sim.degrees()
    return {
        "rounds_to_converge": rounds,
        "detect_s": detect_s,
        "false_positives": false_positives,
        "links_per_node": [min(degrees), max(degrees)],
        "rows_per_node_s": round(rows_per_node_s, 1),
        "bytes_per_node_s": round(bytes_per_node_s, 1),
    }


def storm(sim: Simulation, seconds: float, drop_rate: float, paused: float) -> Dict[str, int]:
    """
    Run C{seconds} with C{drop_rate} of frames lost and, every 2 s, a
    random C{paused} fraction of the running nodes stalling for 2 s (as in
    a long garbage collection).

    @return: C{false_positives} (running nodes that any node declared
        dead), C{suspicions} (suspect states shown for running nodes) and
        C{pauses}.
    """
    since = sim.clock.seconds()
    sim.drop_rate = drop_rate
    pauses = 0
    elapsed = 0.0
    while elapsed < seconds - 1e-9:
        running = sim.running()
        count = max(1, round(len(running) * paused)) if paused else 0
        for node in sim.rng.sample(running, min(count, len(running))):
            sim.pause(node, 2.0)
            pauses += 1
        step = min(2.0, seconds - elapsed)
        sim.run(step)
        elapsed += step
    sim.drop_rate = 0.0
    alarms = sim.false_alarms(since=since)
    dead = {change[2] for change in alarms if change[4] == DEAD}
    return {
        "false_positives": len(dead),
        "suspicions": len(alarms) - sum(1 for change in alarms if change[4] == DEAD),
        "pauses": pauses,
    }


def scale_point(
    nodes: int,
    seed: int = 1,
    steady_s: float = 30.0,
    storm_s: float = 600.0,
) -> Dict[str, object]:
    """
    One point of the C{--scale} curve at default settings.

    A chain of C{nodes} converges (C{rounds_to_converge}); after 10 quiet
    seconds, the membership traffic of C{steady_s} quiet seconds is
    measured (C{bytes_per_node_s}); one node is killed (C{detect_s}: until
    every other shows it dead); then C{storm_s} simulated seconds with 5 %
    of frames lost and 1 % of the nodes pausing 2 s at random count the
    C{false_positives} (running nodes declared dead).

    @return: those five numbers with C{nodes}, and more detail
        (C{detect_goal_s}: 3 s + log2 N gossip intervals,
        C{rounds_goal}: log2 N + 3, C{suspicions}, C{wall_s}).
    """
    started = time.perf_counter()
    sim = Simulation(seed=seed, keep_learned=False)
    members = chain(sim, nodes)
    rounds = converge(sim, limit_s=120.0)
    sim.run(10.0)
    bytes_from, frames_from = sim.bytes_sent, sim.frames_sent
    sim.run(steady_s)
    bytes_per_node_s = (sim.bytes_sent - bytes_from) / nodes / steady_s
    frames_per_node_s = (sim.frames_sent - frames_from) / nodes / steady_s
    detect_s = detect(sim, members[nodes // 2])
    sim.run(5.0)
    storm_outcome = storm(sim, storm_s, drop_rate=0.05, paused=0.01)
    interval = sim.config.gossip_interval_s
    return {
        "nodes": nodes,
        "bytes_per_node_s": round(bytes_per_node_s, 1),
        "rounds_to_converge": rounds,
        "detect_s": detect_s,
        "false_positives": storm_outcome["false_positives"],
        "frames_per_node_s": round(frames_per_node_s, 2),
        "rounds_goal": round(math.log2(nodes) + 3, 1),
        "detect_goal_s": round(3.0 + math.log2(nodes) * interval, 2),
        "storm_s": storm_s,
        "suspicions": storm_outcome["suspicions"],
        "pauses": storm_outcome["pauses"],
        "wall_s": round(time.perf_counter() - started, 1),
    }


#: The budgets L{scaled_budgets} divides: C{(module, name)}.
SCALED_BUDGETS = (
    (admission, "NEW_MEMBERS_BURST"),
    (admission, "NEW_MEMBERS_PER_S"),
    (admission, "VERIFIES_BURST"),
    (admission, "VERIFIES_PER_S"),
    (admission, "GLOBAL_VERIFIES_BURST"),
    (admission, "GLOBAL_VERIFIES_PER_S"),
    (dissemination, "NEW_MEMBERS_BURST"),
    (dissemination, "NEW_MEMBERS_PER_S"),
    (dissemination, "FLUSH_ROWS_PER_TICK"),
    (intake, "OWED_ROWS_PER_LINK"),
    (intake, "OWED_ROWS_IN_ALL"),
)


@contextmanager
def scaled_budgets(divisor: int) -> Iterator[None]:
    """
    While the block runs, divide membership's admission budgets (new
    members and signature checks per link and in all, their bursts and
    rates), the paced push, the rows per flush and the owed rows by
    C{divisor}: N simulated nodes then meet the budgets as N x C{divisor}
    nodes would (a table C{divisor} times the bursts), at the memory and
    time of N.  An emulation of what binds convergence beyond the
    bursts, not of everything (frame sizes stay).
    """
    saved = [(module, name, getattr(module, name)) for module, name in SCALED_BUDGETS]
    try:
        for module, name, value in saved:
            setattr(module, name, type(value)(value / divisor))
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


def emulated_convergence(
    nodes: int, divisor: int, seed: int = 1, limit_s: float = 60.0
) -> Dict[str, object]:
    """
    A chain of C{nodes} under L{scaled_budgets}C{(divisor)}.

    @return: C{emulated_nodes} (C{nodes x divisor}), C{rounds_to_converge}
        (C{None}: not within C{limit_s}), C{rounds_goal} (log2 of the
        emulated size + 3), C{least_known} (the fewest members alive any
        node knows, of C{nodes - 1}) and C{wall_s}.
    """
    started = time.perf_counter()
    with scaled_budgets(divisor):
        sim = Simulation(seed=seed, keep_learned=False)
        chain(sim, nodes)
        rounds = converge(sim, limit_s)
        least = min(n.membership.alive_count() for n in sim.running())
    return {
        "nodes": nodes,
        "emulated_nodes": nodes * divisor,
        "rounds_to_converge": rounds,
        "rounds_goal": round(math.log2(nodes * divisor) + 3, 1),
        "least_known": least,
        "wall_s": round(time.perf_counter() - started, 1),
    }
