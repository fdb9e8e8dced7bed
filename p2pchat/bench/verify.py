"""
verify_limit: the ceiling for ingesting signed entries.

Ed25519 verifications per second on one core with PyNaCl (the library
the node uses), on messages the size of a signed chat entry, the rate
of L{p2pchat.log.entry.decode_entry} (field checks, canonical encoding,
signature check, entry id) on real chat entries, and the rate of
decoding alone (L{p2pchat.log.verifier.decode}: everything a node does to
a received entry frame's line before the signature check: JSON, field
checks, canonical encoding, entry id).  Each is timed over several
rounds; the median is reported.
"""

import statistics
import time

from nacl.signing import SigningKey

from p2pchat.bench.corpus import chat_entries
from p2pchat.bench.results import measured
from p2pchat.log.entry import SIGNING_CONTEXT, decode_entry
from p2pchat.log.verifier import decode
from p2pchat.mesh import wire
from p2pchat.mesh.raw_entry import lazy_entry_frame

# Decoding should take at most half the time of verifying.
GOAL_DECODE_RATIO = 2.0


def _rate(call, items, rounds):
    """
    @return: the median and best items/s of C{rounds} passes of C{call}
        over C{items}.
    """
    rates = []
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            call(item)
        rates.append(len(items) / (time.perf_counter() - started))
    return statistics.median(rates), max(rates)


def run(sizes, workdir, progress):
    """
    @return: C{value} (Ed25519 verifications/s, median) and the
        C{decode_entry} rate.
    """
    count, rounds = sizes.verify_signatures, sizes.verify_rounds
    progress(f"signing {count:,} messages and {count:,} chat entries")
    key = SigningKey(b"\x07" * 32)
    signed = [
        key.sign(SIGNING_CONTEXT + b"y" * 300 + str(i).encode()) for i in range(count)
    ]
    wire_entries = [entry.to_wire() for entry in chat_entries(count, authors=1)]
    raw_entries = [
        lazy_entry_frame(wire.encode_frame(wire.entry_frame(item, sync=True)))["entry"]
        for item in wire_entries
    ]
    verify_key = key.verify_key
    progress(f"verifying, {rounds} round(s)")
    verify_median, verify_best = _rate(verify_key.verify, signed, rounds)
    decode_median, decode_best = _rate(decode_entry, wire_entries, rounds)
    raw_median, raw_best = _rate(decode, raw_entries, rounds)
    return measured(
        value=round(verify_median),
        best=round(verify_best),
        message_bytes=len(signed[0].message),
        us_per_verification=round(1e6 / verify_median, 1),
        decode_entry_per_s=round(decode_median),
        decode_entry_best=round(decode_best),
        us_per_decode_entry=round(1e6 / decode_median, 1),
        decode_per_s=round(raw_median),
        decode_best=round(raw_best),
        us_per_decode=round(1e6 / raw_median, 1),
        signatures=count,
        rounds=rounds,
    )
