"""
C{python -m p2pchat.bench.catchup_view}: what the catch-up tracker
(L{p2pchat.log.progress}) costs per entry and per summary author, against
one signature check measured in the same run (best of a few rounds,
in-process).
"""

import os
import tempfile
import time

from twisted.internet.task import Clock

from p2pchat.bench.machine import describe_machine
from p2pchat.log.identity import Identity, verify_signature
from p2pchat.log.progress import CatchUpProgress
from p2pchat.log.store import Store

AUTHORS = 5000
PAGE = 500


def best(action, count: int, rounds: int = 3) -> float:
    """
    @return: the least seconds per item of C{rounds} runs of C{action}
        (which handles C{count} items).
    """
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) / count)
    return min(times)


def main() -> None:
    identity = Identity.generate()
    message = b"x" * 200
    signature = identity.sign(message)
    verify_s = best(lambda: [verify_signature(identity.node_id, message, signature)
                             for _ in range(2000)], 2000, 5)
    authors = [f"{number:064x}" for number in range(1, AUTHORS + 1)]
    with tempfile.TemporaryDirectory() as directory:
        store = Store(os.path.join(directory, "store.sqlite3"))
        store.open()

        def claim_pages():
            # Reopened: the store's cache of highest seqs starts empty, as
            # on a fresh node.
            store.close()
            store.open()
            tracker = CatchUpProgress(Clock(), store.max_seq)
            for start in range(0, AUTHORS, PAGE):
                tracker.claimed("link", {a: 100 for a in authors[start:start + PAGE]})

        claim_s = best(claim_pages, AUTHORS)
        store.close()

    def commits():
        tracker = CatchUpProgress(Clock(), lambda author: 0)
        tracker.claimed("link", {a: 100 for a in authors[:1000]})
        for seq in range(1, 101):
            for author in authors[:1000]:
                tracker.committed(author, seq)

    commit_s = best(commits, 100_000)
    machine = describe_machine()
    print(f"{machine['cpu']}, {machine['cores']} cores; Python {machine['python']}, "
          f"PyNaCl {machine['pynacl']}, SQLite {machine['sqlite']}")
    print(f"one signature check: {verify_s * 1e6:.1f} us")
    print(f"committed, per entry: {commit_s * 1e6:.2f} us = {commit_s / verify_s:.4f} of a check")
    print(f"claimed, per author of a summary page (store lookup, cache empty): "
          f"{claim_s * 1e6:.2f} us = {claim_s / verify_s:.3f} of a check")


if __name__ == "__main__":
    main()
