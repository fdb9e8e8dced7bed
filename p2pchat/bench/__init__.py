"""
The p2pchat benchmark suite: C{python -m p2pchat.bench [--quick] [--json FILE]}.

Every scenario is a module with one C{run(sizes, workdir, progress)}
function that returns a result dictionary.  A scenario either measures, on
the real system (real C{twistd -n p2pchat} processes over loopback, the
real store, the real signature library), or says why it cannot: its result
then has C{"status": "unsupported"} and a C{"reason"}, and the numbers it
would have are C{None}.  No scenario ever reports a number it did not
measure.

Twisted code runs only in child processes, never in the process that runs
the bench, so the bench can be driven from a test runner that owns a
reactor of its own.

See C{docs/performance.md} for the scenario definitions and results.
"""
