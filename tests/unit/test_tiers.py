"""
The test tiers keep their rules: a unit test module imports nothing that
runs processes, threads, the real reactor or the integration tests, and no
test shadows a C{TestCase} method that trial's C{-j} workers call.
"""

import ast
import os

from twisted.trial.unittest import SynchronousTestCase

TESTS_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Modules a unit test may not import (nor anything under them).
FORBIDDEN_IN_UNIT = (
    "tests.integration",
    "tests.processes",
    "twisted.internet.reactor",
    "subprocess",
    "threading",
    "multiprocessing",
    "concurrent.futures",
)

# TestCase methods a trial worker calls on every test: an attribute of the
# same name set in a test makes the worker fail and every later test on it
# error (test_attest once set self.id).
TESTCASE_METHODS = ("id", "run", "shortDescription", "countTestCases")


def modules(directory):
    """
    @return: (path, parsed module) for every C{.py} file in C{directory}.
    """
    for name in sorted(os.listdir(directory)):
        if name.endswith(".py"):
            path = os.path.join(directory, name)
            with open(path, encoding="utf-8") as f:
                yield path, ast.parse(f.read(), path)


def imported_names(tree):
    """
    @return: every module name C{tree} imports, with C{from X import Y}
        giving both C{X} and C{X.Y}.
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name
        elif isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
            for alias in node.names:
                yield f"{node.module}.{alias.name}"


def forbidden(name):
    """
    @return: whether C{name} is, or is under, a module unit tests may not use.
    """
    return any(name == bad or name.startswith(bad + ".") for bad in FORBIDDEN_IN_UNIT)


class TierTests(SynchronousTestCase):
    """
    Static checks over the test sources.
    """

    def test_unit_imports(self):
        """
        No unit test module imports the integration tests, the process
        helpers, the real reactor, threads or subprocesses.
        """
        found = [
            (os.path.basename(path), name)
            for path, tree in modules(os.path.join(TESTS_DIR, "unit"))
            for name in imported_names(tree)
            if forbidden(name)
        ]
        self.assertEqual(found, [])

    def test_forbidden_names(self):
        """
        The check itself: what it must refuse it refuses, and what unit
        tests use (fake clocks, string transports, sockets' constants) it
        lets through.
        """
        tree = ast.parse(
            "from twisted.internet import reactor\n"
            "import subprocess\n"
            "from tests.integration.test_tls import x\n"
            "from twisted.internet.task import Clock\n"
            "from twisted.internet.testing import StringTransport\n"
            "import socket\n"
        )
        self.assertEqual(
            [name for name in imported_names(tree) if forbidden(name)],
            ["twisted.internet.reactor", "subprocess", "tests.integration.test_tls",
             "tests.integration.test_tls.x"],
        )

    def test_no_testcase_method_shadowed(self):
        """
        No test sets C{self.id} (or another method trial's workers call) to
        a value.
        """
        found = []
        for directory in ("unit", "integration"):
            for path, tree in modules(os.path.join(TESTS_DIR, directory)):
                for node in ast.walk(tree):
                    if (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store)
                            and isinstance(node.value, ast.Name) and node.value.id == "self"
                            and node.attr in TESTCASE_METHODS):
                        found.append((os.path.basename(path), node.lineno, node.attr))
        self.assertEqual(found, [])
