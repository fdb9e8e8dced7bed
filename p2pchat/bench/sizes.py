"""
How big each scenario is: the full run, C{--quick}, and C{--sizes tiny}
(for the test that keeps the bench from rotting).
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Sizes:
    """
    The size of every scenario in one bench run.

    @ivar raw_lines: 120-byte lines sent for the transport ceiling.
    @ivar verify_signatures: signatures verified per round for the
        verification ceiling (also the number of entries decoded).
    @ivar verify_rounds: rounds of those; the median is reported.
    @ivar catchup_entries: entries a fresh node must pull.
    @ivar stall_s: how long a scenario waits without any progress before
        it concludes that no more is coming.
    @ivar live_messages: lines written to node A's console.
    @ivar fanout_nodes: real nodes in the fan-out network.
    @ivar fanout_messages: messages posted (one at a time) in it.
    @ivar fanout_interval_s: pause between two fan-out posts.
    @ivar membership_nodes: simulated nodes for the membership scenario.
    @ivar membership_minutes: simulated minutes watched for false
        positives.
    @ivar search_entries: entries in the store that is searched.
    @ivar search_queries: C{/search} commands timed.
    @ivar flood_entries: entries a raw peer floods a node with while chat
        latency is timed.
    @ivar attack_s: how long each attack of the C{attacks} scenario runs.
    @ivar attack_store_authors: one-entry authors in the attacked store.
    @ivar attack_new_authors: new authors the C{new_authors} attack posts.
    @ivar attack_gossip_rows: rows the C{gossip_rows} attack sends.
    @ivar attack_idle_sockets: sockets the C{idle_sockets} attack holds.
    @ivar rooms_entries: room messages in the store of the C{rooms}
        scenario.
    @ivar rooms_count: rooms they are spread over.
    @ivar rooms_queries: per-room histories and searches timed.
    @ivar burst_lines: lines written at once to a console in the C{burst}
        scenario (and messages seed S1 carries beside it).
    """

    name: str
    raw_lines: int
    verify_signatures: int
    verify_rounds: int
    catchup_entries: int
    stall_s: float
    live_messages: int
    fanout_nodes: int
    fanout_messages: int
    fanout_interval_s: float
    membership_nodes: int
    membership_minutes: float
    search_entries: int
    search_queries: int
    flood_entries: int
    attack_s: float = 4.0
    attack_store_authors: int = 20_000
    attack_new_authors: int = 5_000
    attack_gossip_rows: int = 10_000
    attack_idle_sockets: int = 200
    rooms_entries: int = 1_000_000
    rooms_count: int = 1_000
    rooms_queries: int = 50
    burst_lines: int = 1_000


FULL = Sizes(
    name="full",
    raw_lines=4_000_000,
    verify_signatures=20_000,
    verify_rounds=5,
    catchup_entries=100_000,
    stall_s=20.0,
    live_messages=5_000,
    fanout_nodes=32,
    fanout_messages=200,
    fanout_interval_s=0.05,
    membership_nodes=64,
    membership_minutes=10.0,
    search_entries=1_000_000,
    search_queries=50,
    flood_entries=15_000,
)

QUICK = Sizes(
    name="quick",
    raw_lines=1_000_000,
    verify_signatures=5_000,
    verify_rounds=3,
    catchup_entries=20_000,
    stall_s=10.0,
    live_messages=5_000,
    fanout_nodes=32,
    fanout_messages=50,
    fanout_interval_s=0.05,
    membership_nodes=64,
    membership_minutes=10.0,
    search_entries=100_000,
    search_queries=50,
    flood_entries=15_000,
    attack_s=2.0,
    attack_store_authors=5_000,
    attack_new_authors=2_000,
    attack_gossip_rows=5_000,
    attack_idle_sockets=200,
    rooms_entries=100_000,
)

TINY = Sizes(
    name="tiny",
    raw_lines=20_000,
    verify_signatures=300,
    verify_rounds=1,
    catchup_entries=300,
    stall_s=2.0,
    live_messages=200,
    fanout_nodes=4,
    fanout_messages=5,
    fanout_interval_s=0.02,
    membership_nodes=8,
    membership_minutes=1.0,
    search_entries=2_000,
    search_queries=10,
    flood_entries=1_000,
    attack_s=0.5,
    attack_store_authors=300,
    attack_new_authors=200,
    attack_gossip_rows=300,
    attack_idle_sockets=20,
    rooms_entries=2_000,
    rooms_count=20,
    rooms_queries=10,
    burst_lines=100,
)

BY_NAME = {sizes.name: sizes for sizes in (FULL, QUICK, TINY)}
