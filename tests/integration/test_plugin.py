"""
Tests for C{twisted/plugins/p2pchat_plugin.py}: twistd finds C{p2pchat}.
"""

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.trial.unittest import SynchronousTestCase

import p2pchat
import twisted.plugins

# Run twistd itself; "python -m twisted" would run "twist" instead.
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def source_root() -> str:
    """
    @return: the directory holding the C{p2pchat} package these tests
        import: the checkout, or C{site-packages} when installed.  Its
        C{twisted/plugins} directory holds the plugin.
    """
    return os.path.dirname(os.path.dirname(os.path.abspath(p2pchat.__file__)))


def is_installed(cwd: str) -> bool:
    """
    @param cwd: an empty directory outside the checkout.

    @return: whether C{p2pchat} can be imported in this Python from outside
        the checkout, without C{PYTHONPATH}: that is, whether it is
        installed.
    """
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    result = subprocess.run(
        [sys.executable, "-c", "import p2pchat"],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
        timeout=120,
    )
    return result.returncode == 0


def run_twistd(
    arguments, cwd, pythonpath=None, stderr=subprocess.STDOUT
) -> subprocess.CompletedProcess:
    """
    Run twistd with C{arguments} in C{cwd}, with no standard input.

    @param pythonpath: a directory to put first on C{PYTHONPATH}, or
        L{None} to use only what is installed.
    @param stderr: where standard error goes: into standard output by
        default, C{subprocess.PIPE} to read it apart.
    """
    env = dict(os.environ)
    if pythonpath is None:
        env.pop("PYTHONPATH", None)
    else:
        env["PYTHONPATH"] = os.pathsep.join(
            [pythonpath] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
    return subprocess.run(
        TWISTD + list(arguments),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        check=False,
        timeout=120,
    )


class PluginTests(SynchronousTestCase):
    """
    The C{p2pchat} service maker plugin.
    """

    def test_getPlugins(self) -> None:
        """
        L{getPlugins} yields exactly one L{IServiceMaker} named C{p2pchat},
        whose options and service come from L{p2pchat.tap}.
        """
        plugin_dir = os.path.join(source_root(), "twisted", "plugins")
        if plugin_dir not in map(os.path.abspath, twisted.plugins.__path__):
            # Started in a way that left the checkout off sys.path when
            # twisted.plugins was first imported.
            self.patch(
                twisted.plugins,
                "__path__",
                list(twisted.plugins.__path__) + [plugin_dir],
            )
        makers = [
            maker
            for maker in getPlugins(IServiceMaker)
            if maker.tapname == "p2pchat"
        ]
        self.assertEqual(len(makers), 1)
        from p2pchat import tap

        self.assertIs(makers[0].options, tap.Options)
        self.assertIs(makers[0].makeService, tap.makeService)
        self.assertTrue(makers[0].description)

    def test_badOptionExits(self) -> None:
        """
        C{twistd -n p2pchat --port notaport} exits with status 1 and says
        what is wrong on the first line of standard error, then where help
        is, without the usage dump and without starting anything.
        """
        result = run_twistd(
            ["-n", "p2pchat", "--port", "notaport"],
            cwd=self.mktemp_dir(),
            pythonpath=source_root(),
            stderr=subprocess.PIPE,
        )
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertEqual(
            result.stderr.splitlines(),
            [
                "twistd p2pchat: --port: must be an integer 0-65535, got 'notaport'",
                "see twistd p2pchat --help",
            ],
        )
        self.assertEqual(result.stdout, "")

    def test_installedPlugin(self) -> None:
        """
        When p2pchat is installed, twistd started outside the checkout
        (so only installed code is visible) lists the C{p2pchat} command
        and shows its help; the plugin cache is brought up to date.
        """
        cwd = self.mktemp_dir()
        if not is_installed(cwd):
            raise self.skipTest("p2pchat is not installed in this Python")
        listing = run_twistd(["--help"], cwd=cwd)
        self.assertEqual(listing.returncode, 0, listing.stdout)
        self.assertIn(
            "p2pchat",
            listing.stdout,
            "p2pchat is installed but twistd does not list it; an editable "
            "install hides twisted/plugins: use 'pip install .'",
        )
        help_text = run_twistd(["p2pchat", "--help"], cwd=cwd)
        self.assertEqual(help_text.returncode, 0, help_text.stdout)
        self.assertIn("--peer", help_text.stdout)
        self.assertNotIn("Traceback", help_text.stdout)

    def mktemp_dir(self) -> str:
        """
        @return: a new empty directory for this test.
        """
        path = self.mktemp()
        os.makedirs(path)
        return path
