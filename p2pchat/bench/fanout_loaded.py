"""
fanout_loaded: the fan-out scenario (L{p2pchat.bench.fanout}), its floor
included, run again beside a CPU hog that takes one core: a chat user's
machine is never idle.
"""

from p2pchat.bench.fanout import run_loaded as run

__all__ = ["run"]
