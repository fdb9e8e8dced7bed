"""
C{python -m p2pchat.bench [--quick | --sizes NAME] [--json FILE]}: run
the benchmark scenarios, show progress on standard error, print a table
and optionally write the results as JSON.  With C{--scale}, measure
membership against the network's size instead (L{p2pchat.bench.scale}).
"""

import argparse
import json
import os
import shutil
import sys
import tempfile
import time

from p2pchat.bench import scale
from p2pchat.bench.machine import describe_machine
from p2pchat.bench.runner import SCENARIOS, run_all, table
from p2pchat.bench.sizes import BY_NAME, FULL, QUICK


def parse_arguments(argv):
    """
    @return: the parsed command line.
    """
    parser = argparse.ArgumentParser(
        prog="python -m p2pchat.bench",
        description="Measure p2pchat's speed, scale and cost against the "
        "machine's limits: real nodes over loopback.",
    )
    parser.add_argument(
        "--quick", action="store_true",
        help="smaller sizes: finishes within about 5 minutes on 2 cores",
    )
    parser.add_argument(
        "--sizes", choices=sorted(BY_NAME),
        help="scenario sizes by name (full is the default; tiny takes seconds)",
    )
    parser.add_argument("--json", metavar="FILE", help="write the results as JSON to FILE")
    parser.add_argument(
        "--only", action="append", choices=[name for name, _, _ in SCENARIOS],
        metavar="SCENARIO", help="run only this scenario (repeatable)",
    )
    parser.add_argument(
        "--scale", action="store_true",
        help="simulate membership at 100 and 1,000 nodes (results.scale) instead",
    )
    parser.add_argument(
        "--workdir", metavar="DIR",
        help="where node data goes (default: a temporary directory, removed after)",
    )
    arguments = parser.parse_args(argv)
    if arguments.quick and arguments.sizes not in (None, QUICK.name):
        parser.error("--quick and --sizes disagree")
    return arguments


def write_json(path, report) -> None:
    """
    Write C{report} as JSON to C{path} (if one was given).
    """
    if path:
        with open(path, "w") as output:
            json.dump(report, output, indent=2)
            output.write("\n")


def main(argv=None) -> int:
    """
    Run the bench.

    @return: the exit status: 1 if a scenario failed with an error (not
        when one is unsupported by this build), else 0.
    """
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    if arguments.scale:
        started = time.perf_counter()
        results = scale.run_scale(
            arguments.quick, lambda text: print(text, file=sys.stderr, flush=True)
        )
        report = {
            "machine": describe_machine(),
            "sizes": "quick" if arguments.quick else "full",
            "wall_s": round(time.perf_counter() - started, 1),
            "results": results,
        }
        print(scale.table(results))
        write_json(arguments.json, report)
        return 0
    sizes = BY_NAME[arguments.sizes] if arguments.sizes else (
        QUICK if arguments.quick else FULL
    )
    workdir = arguments.workdir or tempfile.mkdtemp(prefix="p2pchat-bench-")
    os.makedirs(workdir, mode=0o700, exist_ok=True)
    try:
        report = run_all(sizes, workdir, arguments.only)
    finally:
        if not arguments.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    print(table(report))
    write_json(arguments.json, report)
    errors = [name for name, result in report["results"].items() if result["status"] == "error"]
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
