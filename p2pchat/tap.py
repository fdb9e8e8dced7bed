# -*- test-case-name: tests.unit.test_tap -*-
"""
The C{twistd p2pchat} command line: L{Options} validates the arguments into a
L{NodeConfig}, L{makeService} builds the (unstarted) node from it.

Nothing here opens sockets or writes files: the data directory is created
by the service when it starts, and endpoint strings are only parsed, never
listened on.
"""

import dataclasses
import getpass
import math
import os
import sys
from typing import Callable, List, Mapping, Optional, TextIO, Tuple

from twisted.python import usage

from p2pchat.canonical import nfc
from p2pchat.config import NodeConfig, PeerAddress, TLSFiles
from p2pchat.faces.terminal import screen_choice
from p2pchat.log.entry import validate_name
from p2pchat.log.rooms import RoomNameError, normalise_room
from p2pchat.mesh.membership import MembershipConfig
from p2pchat.options_checks import (
    DEFAULT_PORT,
    default_console,
    default_data_dir,
    default_name,
    default_stdio,
    is_decimal,
    parse_host,
    parse_peer,
    parse_port,
    parse_server_endpoint,
    platform_data_dir,
)
from p2pchat.trust.ca import is_dns_safe_name

DEFAULT_ADVERTISE_HOST = "127.0.0.1"
DEFAULT_HANDSHAKE_TIMEOUT_S = 10.0
DEFAULT_MAX_LINKS = MembershipConfig.max_links
MAX_LINKS_LIMIT = 64
DEFAULT_FAILURE_TIMEOUT_S = MembershipConfig.failure_timeout_s
DEFAULT_READY_TIMEOUT_S = NodeConfig.ready_timeout_s


# -- the command line -------------------------------------------------------


class Options(usage.Options):
    """
    The options of C{twistd p2pchat}; after parsing, C{self.config} is the
    L{NodeConfig}.

    @ivar config: the validated L{NodeConfig}, set by L{postOptions}.
    """

    synopsis = "[options]"
    longdesc = (
        "Run one p2pchat node: listen for peers, connect to the peers "
        "given with --peer, and offer a line console on a local port "
        "(telnet/nc) and, on a terminal, on standard input."
    )

    optParameters = [
        [
            "port",
            None,
            None,
            f"TCP port for peer links (default {DEFAULT_PORT}; 0 = any "
            "free port). Same as --listen tcp:PORT.",
        ],
        [
            "listen",
            None,
            None,
            "Twisted server endpoint for peer links, e.g. tcp:9090, "
            "unix:/run/p2pchat.sock, systemd:domain=INET:index=0 (TLS: "
            "--tls-cert, --tls-key and --tls-ca, not ssl:); 'none' for no "
            "listener. Cannot be combined with --port.",
        ],
        [
            "name",
            None,
            None,
            "Display name: 1-32 printable characters, no spaces "
            "(default: your login name).",
        ],
        [
            "data-dir",
            None,
            None,
            "Directory for the identity key and the message store "
            "(default: $STATE_DIRECTORY, else the per-user data "
            "directory/p2pchat/NAME). Created at start.",
        ],
        [
            "console",
            None,
            None,
            "Server endpoint for the line console (default: "
            "tcp:PORT+1:interface=127.0.0.1, tcp:9091:... without a peer "
            "port); 'none' to disable.",
        ],
        [
            "advertise-host",
            None,
            DEFAULT_ADVERTISE_HOST,
            "Host name or address peers should use to reach this node.",
        ],
        [
            "handshake-timeout",
            None,
            str(DEFAULT_HANDSHAKE_TIMEOUT_S),
            "Seconds to wait for a peer's hello before dropping it.",
        ],
        [
            "max-links",
            None,
            str(DEFAULT_MAX_LINKS),
            "How many peer links to keep open (1-64); the node learns every "
            "member by gossip and reaches the rest by relay.",
        ],
        [
            "failure-timeout",
            None,
            str(DEFAULT_FAILURE_TIMEOUT_S),
            "Seconds a suspected member has to refute before it is declared "
            "dead (down to 5/8 of it as other nodes confirm).",
        ],
        ["ready-timeout", None, str(DEFAULT_READY_TIMEOUT_S), "With --peer, the most "
         "seconds systemd's READY=1 waits for the initial catch-up."],
        ["tls-cert", None, None, "PEM certificate of this node (with "
         "--tls-key and --tls-ca: every peer link is mutual TLS)."],
        ["tls-key", None, None, "PEM private key of this node."],
        ["tls-ca", None, None, "PEM certificate of the network's CA: "
         "only peers it signed get in."],
        ["manhole", None, None, "Serve an SSH Python shell with the live "
         "node on this endpoint (a bare port means 127.0.0.1); needs "
         "--manhole-keys or --manhole-passwd. Off by default."],
        ["manhole-keys", None, None, "authorized_keys file of the SSH "
         "keys allowed into the manhole."],
        ["manhole-passwd", None, None, "File of user:password lines "
         "allowed into the manhole."],
        ["metrics", None, None, "Serve Prometheus metrics at /metrics on "
         "this endpoint (a bare port means 127.0.0.1). Off by default."],
        ["log-format", None, "text", "Log format on standard output: "
         "text (timestamped lines) or json (twisted.logger events)."],
    ]

    optFlags = [
        ["stdio", None, "Attach a console to standard input/output "
         "(default when standard input is a terminal)."],
        ["no-stdio", None, "Do not attach a console to standard "
         "input/output."],
        ["hidden", None, "Do not advertise this node in membership "
         "gossip; it can still read and post."],
    ]

    def __init__(
        self,
        environ: Optional[Mapping[str, str]] = None,
        stdin: Optional[TextIO] = None,
        getuser: Optional[Callable[[], str]] = None,
        user_data_dir: Optional[Callable[[str], str]] = None,
        stderr: Optional[TextIO] = None,
    ) -> None:
        """
        The arguments replace the process's environment, standard input and
        standard error, the login name lookup and the platform data
        directory (for tests); by default the real ones are read when the
        options are parsed.
        """
        super().__init__()
        self._environ = environ
        self._stdin = stdin
        self._stderr = stderr
        self._getuser = getuser
        self._user_data_dir = user_data_dir
        self.peers: List[PeerAddress] = []
        self.rooms: List[str] = []

    def parseOptions(self, options: Optional[List[str]] = None) -> None:
        """
        Parse C{options}.

        Under twistd (as its C{p2pchat} sub-command, so C{self.parent} is
        twistd's options) a bad value ends the command here: one line on
        standard error saying what is wrong, a hint to C{--help}, exit
        status 1.  Letting the error reach twistd would print the whole
        usage on standard output with the error as its last line.

        @raise usage.UsageError: for a bad value, when not under twistd.
        @raise SystemExit: with status 1, for a bad value under twistd.
        """
        try:
            super().parseOptions(options)
        except usage.UsageError as error:
            if getattr(self, "parent", None) is None:
                raise
            stderr = sys.stderr if self._stderr is None else self._stderr
            stderr.write(f"twistd p2pchat: {error}\nsee twistd p2pchat --help\n")
            stderr.flush()
            raise SystemExit(1) from None

    def opt_peer(self, peer: str) -> None:
        """Connect to the peer at HOST:PORT (IPv6: [ADDR]:PORT); repeatable."""
        address = parse_peer(peer)
        if address not in self.peers:
            self.peers.append(address)

    def opt_room(self, room: str) -> None:
        """Also join #ROOM at start (every node is in #lobby); repeatable."""
        try:
            room = normalise_room(room)
        except RoomNameError as e:
            raise usage.UsageError(f"--room: {e}") from None
        if room not in self.rooms:
            self.rooms.append(room)

    def postOptions(self) -> None:
        """
        Validate every option and build C{self.config}.

        @raise usage.UsageError: naming the offending option.
        """
        name = self._name()
        listen, port = self._listen_and_port()
        self.config = NodeConfig(
            name=name,
            port=port,
            listen=listen,
            peers=tuple(self.peers),
            rooms=tuple(self.rooms),
            data_dir=self._data_dir(name),
            console=self._console(port),
            stdio=self._stdio(),
            advertise_host=parse_host(
                self["advertise-host"], "--advertise-host"
            ),
            handshake_timeout_s=self._positive_seconds("handshake-timeout"),
            max_links=self._max_links(),
            hidden=bool(self["hidden"]),
            failure_timeout_s=self._positive_seconds("failure-timeout"),
            tls=self._tls(),
            manhole=self._local_endpoint("manhole"),
            manhole_keys=self._readable_file("manhole-keys"),
            manhole_passwd=self._readable_file("manhole-passwd"),
            metrics=self._local_endpoint("metrics"),
            log_format=self._log_format(),
            ready_timeout_s=self._positive_seconds("ready-timeout"),
        )
        screen, screen_log = screen_choice(
            self.config.stdio, sys.stdin if self._stdin is None else self._stdin,
            sys.stdout, getattr(self, "parent", None), self.config.data_dir,
        )
        self.config = dataclasses.replace(self.config, screen=screen, screen_log=screen_log)
        if self.config.tls is not None and not is_dns_safe_name(name):
            raise usage.UsageError(
                f"--name: with --tls-cert the name is checked against the certificate's "
                f"DNS name, so it must be DNS-safe (letters, digits, '-', '.'), got {name!r}"
            )
        if self.config.tls is None and listen is not None and listen.startswith("ssl:"):
            raise usage.UsageError(
                "--listen ssl:... needs --tls-cert, --tls-key and --tls-ca: every peer "
                "link is mutual TLS with the network's CA"
            )
        if self.config.manhole and not (self.config.manhole_keys or self.config.manhole_passwd):
            raise usage.UsageError(
                "--manhole: refuses to start without credentials; give "
                "--manhole-keys FILE or --manhole-passwd FILE"
            )

    def _name(self) -> str:
        name = self["name"]
        if name is None:
            return default_name(self._getuser or getpass.getuser)
        name = nfc(name)
        if not validate_name(name):
            raise usage.UsageError(
                "--name: must be 1-32 printable characters without "
                f"spaces, got {name!r}"
            )
        return name

    def _data_dir(self, name: str) -> str:
        data_dir = self["data-dir"]
        if data_dir is None:
            environ = os.environ if self._environ is None else self._environ
            data_dir = default_data_dir(
                name, environ, self._user_data_dir or platform_data_dir
            )
        elif not data_dir:
            raise usage.UsageError("--data-dir: must not be empty")
        return os.path.abspath(os.path.expanduser(data_dir))

    def _listen_and_port(self) -> Tuple[Optional[str], Optional[int]]:
        port_text, listen = self["port"], self["listen"]
        if port_text is not None and listen is not None:
            raise usage.UsageError(
                "--listen and --port cannot be combined: --port N is the "
                "same as --listen tcp:N"
            )
        if listen is None:
            if port_text is None:
                port = DEFAULT_PORT
            else:
                port = parse_port(port_text, "--port", allow_zero=True)
            return f"tcp:{port}", port
        if listen == "none":
            return None, None
        return listen, parse_server_endpoint(listen, "--listen")

    def _console(self, port: Optional[int]) -> Optional[str]:
        console = self["console"]
        if console is None:
            return default_console(port)
        if console == "none":
            return None
        parse_server_endpoint(console, "--console")
        return console

    def _stdio(self) -> bool:
        if self["stdio"] and self["no-stdio"]:
            raise usage.UsageError(
                "--stdio and --no-stdio cannot be combined"
            )
        if self["stdio"]:
            return True
        if self["no-stdio"]:
            return False
        return default_stdio(sys.stdin if self._stdin is None else self._stdin)

    def _positive_seconds(self, option: str) -> float:
        text = self[option]
        try:
            seconds = float(text)
        except ValueError:
            seconds = math.nan
        if not (math.isfinite(seconds) and seconds > 0):
            raise usage.UsageError(
                f"--{option}: must be a number of seconds > 0, got {text!r}"
            )
        return seconds

    def _max_links(self) -> int:
        text = self["max-links"]
        if not (is_decimal(text) and 1 <= int(text) <= MAX_LINKS_LIMIT):
            raise usage.UsageError(
                f"--max-links: must be an integer 1-{MAX_LINKS_LIMIT}, got {text!r}"
            )
        return int(text)

    def _readable_file(self, option: str) -> Optional[str]:
        path = self[option]
        if path is None:
            return None
        if not os.path.isfile(path) or not os.access(path, os.R_OK):
            raise usage.UsageError(f"--{option}: cannot read file {path!r}")
        return os.path.abspath(path)

    def _tls(self) -> Optional[TLSFiles]:
        given = [self[o] is not None for o in ("tls-cert", "tls-key", "tls-ca")]
        if not any(given):
            return None
        if not all(given):
            raise usage.UsageError(
                "--tls-cert, --tls-key and --tls-ca must be given together"
            )
        return TLSFiles(
            cert=self._readable_file("tls-cert"),
            key=self._readable_file("tls-key"),
            ca=self._readable_file("tls-ca"),
        )

    def _local_endpoint(self, option: str) -> Optional[str]:
        text = self[option]
        if text is None or text == "none":
            return None
        if is_decimal(text):
            parse_port(text, f"--{option}", allow_zero=True)
            return f"tcp:{text}:interface=127.0.0.1"
        parse_server_endpoint(text, f"--{option}")
        return text

    def _log_format(self) -> str:
        value = self["log-format"]
        if value not in ("text", "json"):
            raise usage.UsageError(f"--log-format: must be text or json, got {value!r}")
        return value


def makeService(options: Options):
    """
    Build the node described by C{options.config}, without starting it.

    @return: a L{p2pchat.service.NodeService}.
    """
    from p2pchat.service import NodeService

    return NodeService(options.config)
