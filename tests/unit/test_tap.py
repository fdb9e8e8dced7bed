"""
Tests for L{p2pchat.tap}: the command line of C{twistd p2pchat}.
"""

import io
import os

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from p2pchat import options_checks, tap
from p2pchat.config import NodeConfig, PeerAddress


class FakeTerminal(io.StringIO):
    """
    A standard input that claims to be a terminal.
    """

    def isatty(self) -> bool:
        return True


def fake_user_data_dir(appname: str) -> str:
    """
    Stand in for L{platformdirs.user_data_dir}.
    """
    return os.path.join("/home/alice/.local/share", appname)


def parse(*arguments, environ=None, stdin=None, getuser=None) -> NodeConfig:
    """
    Parse C{arguments} with an L{tap.Options} that sees only the given
    environment (empty by default), a non-terminal standard input and the
    login name C{alice}.

    @return: the resulting L{NodeConfig}.
    """
    options = tap.Options(
        environ={} if environ is None else environ,
        stdin=io.StringIO() if stdin is None else stdin,
        getuser=(lambda: "alice") if getuser is None else getuser,
        user_data_dir=fake_user_data_dir,
    )
    options.parseOptions(list(arguments))
    return options.config


class OptionsTestsMixin:
    """
    Helpers for the option tests.
    """

    def assertUsageError(self, option: str, *arguments: str) -> str:
        """
        Assert that parsing C{arguments} fails with a message that names
        C{option}.

        @return: the message.
        """
        error = self.assertRaises(usage.UsageError, parse, *arguments)
        message = str(error)
        self.assertIn(option, message)
        return message


class DefaultsTests(SynchronousTestCase):
    """
    What a node gets when no option is given.
    """

    def test_defaults(self) -> None:
        """
        Without options the node listens on TCP 9090, has its console on
        127.0.0.1:9091, no peers, the login name, a per-user data
        directory, no stdio console (stdin is not a terminal), advertises
        127.0.0.1 and waits 10 seconds for a hello.
        """
        self.assertEqual(
            parse(),
            NodeConfig(
                name="alice",
                port=9090,
                listen="tcp:9090",
                peers=(),
                data_dir="/home/alice/.local/share/p2pchat/alice",
                console="tcp:9091:interface=127.0.0.1",
                stdio=False,
                advertise_host="127.0.0.1",
                handshake_timeout_s=10.0,
            ),
        )

    def test_optionsWithoutInjection(self) -> None:
        """
        L{tap.Options} also works with the real environment, standard input
        and login name, as twistd creates it, and the data directory is an
        absolute path.
        """
        options = tap.Options()
        options.parseOptions(["--name", "bob"])
        self.assertTrue(os.path.isabs(options.config.data_dir))
        self.assertIsInstance(options.config.stdio, bool)

    def test_helpDescribesEveryOption(self) -> None:
        """
        C{--help} describes every option.
        """
        help_text = str(tap.Options())
        for option in [
            "--port",
            "--listen",
            "--peer",
            "--name",
            "--data-dir",
            "--console",
            "--stdio",
            "--no-stdio",
            "--advertise-host",
            "--handshake-timeout",
        ]:
            self.assertIn(option, help_text)


class PortTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--port N}.
    """

    def test_port(self) -> None:
        """
        C{--port N} listens on TCP port N and advertises N.
        """
        config = parse("--port", "7000")
        self.assertEqual((config.port, config.listen), (7000, "tcp:7000"))

    def test_portZero(self) -> None:
        """
        C{--port 0} means any free port.
        """
        config = parse("--port", "0")
        self.assertEqual((config.port, config.listen), (0, "tcp:0"))

    def test_portLimits(self) -> None:
        """
        1 and 65535 are valid ports.
        """
        self.assertEqual(parse("--port", "1").port, 1)
        self.assertEqual(
            parse("--port", "65535", "--console", "none").port, 65535
        )

    def test_portNotANumber(self) -> None:
        """
        A port that is not a number is refused with a message naming
        C{--port} and the value.
        """
        message = self.assertUsageError("--port", "--port", "abc")
        self.assertIn("'abc'", message)

    def test_portOutOfRange(self) -> None:
        """
        Ports above 65535 and negative ports are refused.
        """
        self.assertUsageError("--port", "--port", "65536")
        self.assertUsageError("--port", "--port=-1")

    def test_portNotPlainDigits(self) -> None:
        """
        Only plain decimal digits are a port: signs, spaces and
        underscores, which C{int()} would accept, are refused.
        """
        for text in ["+80", " 80", "8_0", "80.0", ""]:
            self.assertUsageError("--port", "--port", text)

    def test_portAndListen(self) -> None:
        """
        C{--port} and C{--listen} together are refused: they say the same
        thing.
        """
        message = self.assertUsageError(
            "--listen", "--port", "7000", "--listen", "tcp:7001"
        )
        self.assertIn("--port", message)


class ListenTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--listen ENDPOINT}.
    """

    def test_tcpDerivesPort(self) -> None:
        """
        C{--listen tcp:7000} listens there and advertises port 7000.
        """
        config = parse("--listen", "tcp:7000:interface=0.0.0.0")
        self.assertEqual(
            (config.listen, config.port),
            ("tcp:7000:interface=0.0.0.0", 7000),
        )

    def test_portKeyword(self) -> None:
        """
        The port may be given as C{port=N}.
        """
        self.assertEqual(parse("--listen", "tcp:port=7000").port, 7000)

    def test_sslDerivesPort(self) -> None:
        """
        C{--listen ssl:N:...} (with the TLS files) advertises port N.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        files = []
        for name in ("cert.pem", "key.pem", "ca.pem"):
            files.append(os.path.join(directory, name))
            with open(files[-1], "w") as f:
                f.write("x")
        config = parse("--listen", "ssl:7443", "--tls-cert", files[0], "--tls-key", files[1],
                       "--tls-ca", files[2], "--name", "alice")
        self.assertEqual(config.port, 7443)

    def test_sslNeedsTLSFiles(self) -> None:
        """
        C{--listen ssl:...} without the TLS files is a usage error: peer
        links are mutual TLS with the network's CA or not TLS at all.
        """
        message = self.assertUsageErrorMessage("ssl:7443:privateKey=/nonexistent.pem")
        self.assertIn("--tls-cert", message)

    def assertUsageErrorMessage(self, listen: str) -> str:
        error = self.assertRaises(usage.UsageError, parse, "--listen", listen)
        return str(error)

    def test_tlsNameMustBeDnsSafe(self) -> None:
        """
        With TLS, a name that cannot be a certificate's DNS name is refused.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        files = []
        for name in ("cert.pem", "key.pem", "ca.pem"):
            files.append(os.path.join(directory, name))
            with open(files[-1], "w") as f:
                f.write("x")
        error = self.assertRaises(usage.UsageError, parse, "--name", "al_ice!", "--tls-cert",
                                  files[0], "--tls-key", files[1], "--tls-ca", files[2])
        self.assertIn("--name", str(error))

    def test_unixHasNoPort(self) -> None:
        """
        A UNIX socket listener has no port, so the console gets the
        default 9091.
        """
        config = parse("--listen", "unix:/run/p2pchat/peer.sock")
        self.assertEqual(
            (config.listen, config.port, config.console),
            (
                "unix:/run/p2pchat/peer.sock",
                None,
                "tcp:9091:interface=127.0.0.1",
            ),
        )

    def test_pluginEndpoint(self) -> None:
        """
        Endpoint types from plugins, like systemd socket activation, are
        accepted and have no port.
        """
        config = parse("--listen", "systemd:domain=INET:index=0")
        self.assertEqual(
            (config.listen, config.port),
            ("systemd:domain=INET:index=0", None),
        )

    def test_none(self) -> None:
        """
        C{--listen none} makes an outbound-only node without a port.
        """
        config = parse("--listen", "none")
        self.assertEqual(
            (config.listen, config.port, config.console),
            (None, None, "tcp:9091:interface=127.0.0.1"),
        )

    def test_unknownType(self) -> None:
        """
        An unknown endpoint type is refused with a message naming
        C{--listen}.
        """
        message = self.assertUsageError("--listen", "--listen", "foo:bar")
        self.assertIn("'foo'", message)

    def test_garbage(self) -> None:
        """
        Strings that are no endpoint at all are refused.
        """
        for text in ["", "9090", ":9090", "tcp", "unix", "tcp:\\"]:
            self.assertUsageError("--listen", "--listen", text)

    def test_badPort(self) -> None:
        """
        A TCP endpoint with a bad port is refused.
        """
        self.assertUsageError("--listen", "--listen", "tcp:abc")
        self.assertUsageError("--listen", "--listen", "tcp:70000")

    def test_badArguments(self) -> None:
        """
        Arguments the endpoint type does not take are refused.
        """
        self.assertUsageError("--listen", "--listen", "tcp:9090:colour=red")
        self.assertUsageError("--listen", "--listen", "tcp:1:2:3:4")


class PeerTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--peer HOST:PORT}.
    """

    def test_ipv4(self) -> None:
        """
        An IPv4 address and port.
        """
        self.assertEqual(
            parse("--peer", "192.0.2.7:9090").peers,
            (PeerAddress("192.0.2.7", 9090),),
        )

    def test_ipv6(self) -> None:
        """
        A bracketed IPv6 address and port; the host is kept without
        brackets.
        """
        self.assertEqual(
            parse("--peer", "[::1]:9090", "--peer", "[2001:db8::5]:1").peers,
            (PeerAddress("::1", 9090), PeerAddress("2001:db8::5", 1)),
        )

    def test_hostName(self) -> None:
        """
        Host names following RFC 1123 are accepted.
        """
        self.assertEqual(
            parse(
                "--peer", "friend.example:9090", "--peer", "localhost:7",
                "--peer", "a-1.B2.example:80",
            ).peers,
            (
                PeerAddress("friend.example", 9090),
                PeerAddress("localhost", 7),
                PeerAddress("a-1.B2.example", 80),
            ),
        )

    def test_repeatedKeepsOrderDropsDuplicates(self) -> None:
        """
        Peers are kept in the order given; a repeated peer is kept once.
        """
        self.assertEqual(
            parse(
                "--peer", "b.example:2", "--peer", "a.example:1",
                "--peer", "b.example:2",
            ).peers,
            (PeerAddress("b.example", 2), PeerAddress("a.example", 1)),
        )

    def test_badHosts(self) -> None:
        """
        Malformed hosts are refused with a message naming C{--peer}.
        """
        for text in [
            "a..b:1",
            ":9090",
            "-a.example:1",
            "a-.example:1",
            "a_b.example:1",
            "1.2.3.999:1",
            "exa mple:1",
            ("a" * 64) + ".example:1",
            ".".join(["a" * 60] * 5) + ":1",
        ]:
            self.assertUsageError("--peer", "--peer", text)

    def test_badIPv6(self) -> None:
        """
        IPv6 addresses must be valid and bracketed.
        """
        for text in ["::1:9090", "[::1]9090", "[::1", "[nothost]:1", "[]:1"]:
            self.assertUsageError("--peer", "--peer", text)

    def test_badPorts(self) -> None:
        """
        The port must be 1-65535: 0, 70000, a missing port and a name are
        refused.
        """
        for text in ["host:0", "host:70000", "host:", "host", "host:http"]:
            self.assertUsageError("--peer", "--peer", text)


class NameTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--name NAME} and its default.
    """

    def test_name(self) -> None:
        """
        A valid name is used as given.
        """
        self.assertEqual(parse("--name", "Zoë_42").name, "Zoë_42")
        self.assertEqual(parse("--name", "x" * 32).name, "x" * 32)

    def test_invalid(self) -> None:
        """
        Names that are too long, empty or contain whitespace or
        unprintable characters are refused with a message naming
        C{--name}.
        """
        for name in ["x" * 33, "", "a b", "a\tb", "a\x00b"]:
            self.assertUsageError("--name", "--name", name)

    def test_defaultIsLoginName(self) -> None:
        """
        Without C{--name}, the login name is used.
        """
        self.assertEqual(parse(getuser=lambda: "carol").name, "carol")

    def test_defaultSanitized(self) -> None:
        """
        A login name that is not a valid name has its whitespace dropped
        and is cut to 32 characters.
        """
        self.assertEqual(parse(getuser=lambda: "Jo Smith").name, "JoSmith")
        self.assertEqual(parse(getuser=lambda: "y" * 40).name, "y" * 32)

    def test_defaultFallback(self) -> None:
        """
        When the login name cannot be found, or nothing of it is usable,
        the name is C{user}.
        """

        def fail() -> str:
            raise OSError("no login name")

        self.assertEqual(parse(getuser=fail).name, "user")
        self.assertEqual(parse(getuser=lambda: " \t").name, "user")


class DataDirTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--data-dir DIR} and its default.
    """

    def test_dataDir(self) -> None:
        """
        C{--data-dir} is used, made absolute, and not created.
        """
        path = self.mktemp()
        config = parse("--data-dir", path)
        self.assertEqual(config.data_dir, os.path.abspath(path))
        self.assertFalse(os.path.exists(path))

    def test_empty(self) -> None:
        """
        An empty C{--data-dir} is refused.
        """
        self.assertUsageError("--data-dir", "--data-dir", "")

    def test_defaultPerName(self) -> None:
        """
        By default each name gets its own directory under the per-user
        data directory, so several nodes can run for one login.
        """
        self.assertEqual(
            parse("--name", "bob").data_dir,
            "/home/alice/.local/share/p2pchat/bob",
        )

    def test_defaultStateDirectory(self) -> None:
        """
        Under systemd, C{$STATE_DIRECTORY} is the default; when it holds
        several directories, the first is used.
        """
        self.assertEqual(
            parse(environ={"STATE_DIRECTORY": "/var/lib/p2pchat"}).data_dir,
            "/var/lib/p2pchat",
        )
        self.assertEqual(
            parse(environ={"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"})
            .data_dir,
            "/var/lib/a",
        )

    def test_emptyStateDirectory(self) -> None:
        """
        An empty C{$STATE_DIRECTORY} is ignored.
        """
        self.assertEqual(
            options_checks.default_data_dir("n", {"STATE_DIRECTORY": ""},
                                 fake_user_data_dir),
            "/home/alice/.local/share/p2pchat/n",
        )

    def test_optionBeatsStateDirectory(self) -> None:
        """
        C{--data-dir} wins over C{$STATE_DIRECTORY}.
        """
        self.assertEqual(
            parse(
                "--data-dir", "/srv/chat",
                environ={"STATE_DIRECTORY": "/var/lib/p2pchat"},
            ).data_dir,
            "/srv/chat",
        )


class ConsoleTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--console ENDPOINT} and its default.
    """

    def test_defaultFollowsPort(self) -> None:
        """
        The default console is on the loopback interface, one port above
        the peer port.
        """
        self.assertEqual(
            parse("--port", "7000").console, "tcp:7001:interface=127.0.0.1"
        )
        self.assertEqual(
            parse("--listen", "tcp:8000").console,
            "tcp:8001:interface=127.0.0.1",
        )

    def test_defaultPortZero(self) -> None:
        """
        With C{--port 0} the console also takes any free port.
        """
        self.assertEqual(
            parse("--port", "0").console, "tcp:0:interface=127.0.0.1"
        )

    def test_noDefaultAbove65535(self) -> None:
        """
        With peer port 65535 there is no port+1, so C{--console} must be
        given.
        """
        self.assertUsageError("--console", "--port", "65535")

    def test_console(self) -> None:
        """
        An explicit console endpoint is used as given.
        """
        self.assertEqual(
            parse("--console", "unix:/tmp/chat.sock").console,
            "unix:/tmp/chat.sock",
        )

    def test_none(self) -> None:
        """
        C{--console none} disables the network console.
        """
        self.assertIsNone(parse("--console", "none").console)

    def test_invalid(self) -> None:
        """
        An invalid console endpoint is refused with a message naming
        C{--console}.
        """
        self.assertUsageError("--console", "--console", "foo:bar")
        self.assertUsageError("--console", "--console", "tcp:99999")


class StdioTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--stdio} and C{--no-stdio}.
    """

    def test_defaultTerminal(self) -> None:
        """
        By default, the stdio console is on when standard input is a
        terminal.
        """
        self.assertTrue(parse(stdin=FakeTerminal()).stdio)

    def test_defaultNotTerminal(self) -> None:
        """
        By default, the stdio console is off when standard input is not a
        terminal.
        """
        self.assertFalse(parse(stdin=io.StringIO()).stdio)

    def test_defaultClosedOrMissing(self) -> None:
        """
        A closed or missing standard input means no stdio console.
        """
        closed = io.StringIO()
        closed.close()
        self.assertFalse(options_checks.default_stdio(closed))
        self.assertFalse(options_checks.default_stdio(None))
        self.assertFalse(parse(stdin=closed).stdio)

    def test_flags(self) -> None:
        """
        C{--stdio} and C{--no-stdio} override the default.
        """
        self.assertTrue(parse("--stdio", stdin=io.StringIO()).stdio)
        self.assertFalse(parse("--no-stdio", stdin=FakeTerminal()).stdio)

    def test_both(self) -> None:
        """
        C{--stdio} and C{--no-stdio} together are refused.
        """
        self.assertUsageError("--stdio", "--stdio", "--no-stdio")


class AdvertiseHostTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--advertise-host HOST}.
    """

    def test_hosts(self) -> None:
        """
        Names and addresses are accepted; brackets around an IPv6 address
        are dropped.
        """
        for given, expected in [
            ("chat.example", "chat.example"),
            ("192.0.2.1", "192.0.2.1"),
            ("2001:db8::1", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
        ]:
            self.assertEqual(
                parse("--advertise-host", given).advertise_host, expected
            )

    def test_invalid(self) -> None:
        """
        Malformed hosts are refused with a message naming
        C{--advertise-host}.
        """
        for host in ["", "a..b", "host:9090", "[chat.example]", "a b"]:
            self.assertUsageError(
                "--advertise-host", "--advertise-host", host
            )


class HandshakeTimeoutTests(OptionsTestsMixin, SynchronousTestCase):
    """
    C{--handshake-timeout SECONDS}.
    """

    def test_timeout(self) -> None:
        """
        A positive number of seconds, fractions allowed.
        """
        self.assertEqual(
            parse("--handshake-timeout", "2.5").handshake_timeout_s, 2.5
        )

    def test_invalid(self) -> None:
        """
        Zero, negative, infinite, NaN and non-numbers are refused with a
        message naming C{--handshake-timeout}.
        """
        for text in ["0", "-1", "inf", "nan", "soon", ""]:
            self.assertUsageError(
                "--handshake-timeout", "--handshake-timeout", text
            )


class LaterIssueOptionsTests(OptionsTestsMixin, SynchronousTestCase):
    """
    The options for membership, TLS, the manhole, metrics and logging.
    """

    def files(self, *names):
        """
        @return: paths of readable files with these names in a temp dir.
        """
        directory = os.path.abspath(self.mktemp())
        os.makedirs(directory)
        paths = []
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "w") as f:
                f.write("x")
            paths.append(path)
        return paths

    def test_defaults(self) -> None:
        """
        Without these options: 5 links, not hidden, 4 s failure time-out,
        no TLS, manhole or metrics, text logs.
        """
        config = parse()
        self.assertEqual(
            (config.max_links, config.hidden, config.failure_timeout_s, config.tls,
             config.manhole, config.metrics, config.log_format),
            (5, False, 4.0, None, None, None, "text"),
        )

    def test_membership_options(self) -> None:
        """
        --max-links, --hidden and --failure-timeout are parsed and checked.
        """
        config = parse("--max-links", "8", "--hidden", "--failure-timeout", "2.5")
        self.assertEqual((config.max_links, config.hidden, config.failure_timeout_s),
                         (8, True, 2.5))
        for bad in ("0", "65", "x", "-1"):
            self.assertUsageError("--max-links", "--max-links", bad)
        self.assertUsageError("--failure-timeout", "--failure-timeout", "0")

    def test_tls_all_or_nothing(self) -> None:
        """
        The three TLS files go together, and each must be readable.
        """
        cert, key, ca = self.files("cert.pem", "key.pem", "ca.pem")
        config = parse("--tls-cert", cert, "--tls-key", key, "--tls-ca", ca)
        self.assertEqual((config.tls.cert, config.tls.key, config.tls.ca), (cert, key, ca))
        message = self.assertUsageError("--tls-cert", "--tls-cert", cert, "--tls-key", key)
        self.assertIn("together", message)
        self.assertUsageError("--tls-ca", "--tls-cert", cert, "--tls-key", key,
                              "--tls-ca", cert + ".missing")

    def test_manhole_needs_credentials(self) -> None:
        """
        --manhole without --manhole-keys or --manhole-passwd is refused; a
        bare port binds 127.0.0.1.
        """
        message = self.assertUsageError("--manhole", "--manhole", "2222")
        self.assertIn("credentials", message)
        (keys,) = self.files("authorized_keys")
        config = parse("--manhole", "2222", "--manhole-keys", keys)
        self.assertEqual(config.manhole, "tcp:2222:interface=127.0.0.1")
        self.assertEqual(config.manhole_keys, keys)

    def test_metrics_endpoint(self) -> None:
        """
        --metrics takes a bare port (bound to 127.0.0.1) or an endpoint.
        """
        self.assertEqual(parse("--metrics", "9100").metrics, "tcp:9100:interface=127.0.0.1")
        self.assertEqual(parse("--metrics", "tcp:9100").metrics, "tcp:9100")
        self.assertUsageError("--metrics", "--metrics", "bogus:thing")

    def test_log_format(self) -> None:
        """
        --log-format is text or json.
        """
        self.assertEqual(parse("--log-format", "json").log_format, "json")
        self.assertUsageError("--log-format", "--log-format", "xml")


class UnderTwistdTests(SynchronousTestCase):
    """
    Run by twistd (as its C{p2pchat} sub-command), a bad value is one line
    and a hint on standard error, not twistd's usage dump.
    """

    def test_badValueIsOneLineAndExit1(self) -> None:
        """
        With a parent (twistd's options), a bad value writes the error and
        C{see twistd p2pchat --help} to standard error and exits with
        status 1.
        """
        stderr = io.StringIO()
        options = tap.Options(environ={}, stdin=io.StringIO(), stderr=stderr)
        options.parent = usage.Options()
        error = self.assertRaises(SystemExit, options.parseOptions, ["--port", "notaport"])
        self.assertEqual(error.code, 1)
        self.assertEqual(
            stderr.getvalue().splitlines(),
            [
                "twistd p2pchat: --port: must be an integer 0-65535, got 'notaport'",
                "see twistd p2pchat --help",
            ],
        )

    def test_withoutParentRaises(self) -> None:
        """
        Parsed on its own (as tests and other callers do), a bad value is a
        L{usage.UsageError} and nothing is written.
        """
        stderr = io.StringIO()
        options = tap.Options(environ={}, stdin=io.StringIO(), stderr=stderr)
        self.assertRaises(usage.UsageError, options.parseOptions, ["--port", "notaport"])
        self.assertEqual(stderr.getvalue(), "")


class MakeServiceTests(SynchronousTestCase):
    """
    L{tap.makeService}.
    """

    def test_nodeService(self) -> None:
        """
        C{makeService} builds an unstarted L{NodeService} from the parsed
        configuration, without creating the data directory.
        """
        from p2pchat.service import NodeService

        data_dir = self.mktemp()
        options = tap.Options(
            environ={}, stdin=io.StringIO(), getuser=lambda: "alice",
            user_data_dir=fake_user_data_dir,
        )
        options.parseOptions(["--port", "0", "--data-dir", data_dir])
        service = tap.makeService(options)
        self.assertIsInstance(service, NodeService)
        self.assertFalse(service.running)
        self.assertFalse(os.path.exists(data_dir))


class EndpointStringTests(SynchronousTestCase):
    """
    L{p2pchat.endpoint_strings.parse} reads descriptions as
    C{serverFromString} documents them, without Twisted's private parser.
    """

    def test_grammar(self):
        """
        Fields split on C{:}; a field with C{=} is a keyword (its value may
        hold more C{=}); a backslash makes the next character literal; a
        lone trailing backslash is an error.
        """
        from p2pchat.endpoint_strings import parse

        cases = {
            "tcp:9090": (["tcp", "9090"], {}),
            "tcp:9090:interface=127.0.0.1": (["tcp", "9090"], {"interface": "127.0.0.1"}),
            "a:b:d=1:c": (["a", "b", "c"], {"d": "1"}),
            "x:k=v=w": (["x"], {"k": "v=w"}),
            "unix:/run/a\\:b:mode=600": (["unix", "/run/a:b"], {"mode": "600"}),
            "ssl:443:privateKey=a\\=b.pem": (["ssl", "443"], {"privateKey": "a=b.pem"}),
            "tcp6:9090:interface=\\:\\:1": (["tcp6", "9090"], {"interface": "::1"}),
            "": ([""], {}),
        }
        for description, expected in cases.items():
            self.assertEqual(parse(description), expected, description)
        self.assertRaises(ValueError, parse, "tcp:9090\\")

    def test_builtin_arguments_and_plugins(self):
        """
        Built-in types take the arguments their parsers document; plugin
        types (systemd, tcp6) are known through the plugin interface.
        """
        from p2pchat.endpoint_strings import check_arguments, plugin_prefixes

        check_arguments("tcp", ["9090"], {"interface": "::1", "backlog": "5"})
        check_arguments("unix", [], {"address": "/run/x", "lockfile": "0"})
        self.assertRaises(TypeError, check_arguments, "tcp", ["9090"], {"colour": "red"})
        self.assertRaises(TypeError, check_arguments, "unix", [], {})
        self.assertTrue({"systemd", "tcp6"} <= plugin_prefixes())
