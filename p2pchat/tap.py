# -*- test-case-name: tests.unit.test_tap -*-
"""
The C{twistd p2pchat} command line: L{Options} validates the arguments into a
L{NodeConfig}, L{makeService} builds the (unstarted) node from it.

Nothing here opens sockets or writes files: the data directory is created
by the service when it starts, and endpoint strings are only parsed, never
listened on.
"""

import getpass
import math
import os
import re
import sys
from typing import Callable, List, Mapping, Optional, TextIO, Tuple

from twisted.python import usage

from p2pchat import endpoint_strings
from p2pchat.addresses import (
    AddressError,
    is_valid_host,
    parse_peer_address,
    parse_port_text,
)
from p2pchat.canonical import nfc
from p2pchat.config import NodeConfig, PeerAddress, TLSFiles
from p2pchat.log.entry import validate_name
from p2pchat.mesh.membership import MembershipConfig
from p2pchat.trust.ca import is_dns_safe_name

DEFAULT_PORT = 9090
DEFAULT_CONSOLE_PORT = DEFAULT_PORT + 1
DEFAULT_ADVERTISE_HOST = "127.0.0.1"
DEFAULT_HANDSHAKE_TIMEOUT_S = 10.0
DEFAULT_MAX_LINKS = MembershipConfig.max_links
MAX_LINKS_LIMIT = 64
DEFAULT_FAILURE_TIMEOUT_S = MembershipConfig.failure_timeout_s
FALLBACK_NAME = "user"
MAX_NAME_LENGTH = 32

# Endpoint types whose first argument (or "port=") is a TCP port number.
_PORT_ENDPOINT_TYPES = ("tcp", "tcp6", "ssl")

_ASCII_DIGITS = re.compile(r"[0-9]+\Z")


# -- pure helpers ----------------------------------------------------------


def parse_port(text: str, option: str, allow_zero: bool = False) -> int:
    """
    Parse a TCP port number given on the command line.

    @param text: the argument as given.
    @param option: the option name used in error messages, e.g. C{"--port"}.
    @param allow_zero: whether C{0} ("any free port") is acceptable.

    @raise usage.UsageError: if C{text} is not a decimal integer in range.
    """
    try:
        return parse_port_text(text, allow_zero)
    except AddressError as e:
        raise usage.UsageError(f"{option}: {e}") from None


def parse_host(text: str, option: str) -> str:
    """
    Validate a host given on its own (an IPv6 address may be bracketed).

    @return: the host, without brackets.
    @raise usage.UsageError: if it is not a valid host.
    """
    host = text
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            host = text  # brackets are only for IPv6 addresses
    if not is_valid_host(host):
        raise usage.UsageError(
            f"{option}: not a valid host name or IP address: {text!r}"
        )
    return host


def parse_peer(text: str, option: str = "--peer") -> PeerAddress:
    """
    Parse C{HOST:PORT}, where HOST is an IPv4 address, a bracketed IPv6
    address (C{[::1]:9090}) or a host name (see L{p2pchat.addresses}).

    @raise usage.UsageError: naming C{option} if C{text} is malformed.
    """
    try:
        return parse_peer_address(text)
    except AddressError as e:
        raise usage.UsageError(f"{option}: {e}") from None


def parse_server_endpoint(description: str, option: str) -> Optional[int]:
    """
    Check that C{description} is a server endpoint string Twisted can use
    (as L{twisted.internet.endpoints.serverFromString} would), without
    listening and without reading any file: for C{ssl:} the certificate is
    only loaded when the service starts.

    The built-in types (C{tcp}, C{ssl}, C{unix}) have their arguments
    checked against the parser's signature; for plugin types (C{systemd},
    C{tcp6}, ...) the type must be known.

    @return: the port for C{tcp}, C{tcp6} and C{ssl} endpoints, else
        L{None}.
    @raise usage.UsageError: naming C{option} if it is not valid.
    """
    try:
        args, kwargs = endpoint_strings.parse(description)
    except Exception as error:
        raise usage.UsageError(
            f"{option}: cannot parse endpoint {description!r}: {error}"
        ) from None
    if not args or not args[0]:
        raise usage.UsageError(
            f"{option}: expected an endpoint like tcp:9090, "
            f"got {description!r}"
        )
    endpoint_type, arguments = args[0], args[1:]
    if endpoint_type not in endpoint_strings.BUILTIN:
        plugins = {prefix.lower() for prefix in endpoint_strings.plugin_prefixes()}
        if endpoint_type.lower() not in plugins:
            raise usage.UsageError(
                f"{option}: unknown endpoint type {endpoint_type!r} in "
                f"{description!r} (try tcp:PORT, ssl:PORT, unix:PATH, "
                f"systemd:domain=INET:index=0)"
            )
    else:
        try:
            endpoint_strings.check_arguments(endpoint_type, arguments, kwargs)
        except TypeError as error:
            raise usage.UsageError(
                f"{option}: bad arguments for {endpoint_type!r} in "
                f"{description!r}: {error}"
            ) from None
    if endpoint_type == "unix" and not (arguments or kwargs.get("address")):
        raise usage.UsageError(
            f"{option}: unix endpoint needs a path, got {description!r}"
        )
    if endpoint_type not in _PORT_ENDPOINT_TYPES:
        return None
    port_text = arguments[0] if arguments else kwargs.get("port")
    if port_text is None:
        raise usage.UsageError(
            f"{option}: {endpoint_type} endpoint needs a port, "
            f"got {description!r}"
        )
    return parse_port(port_text, option, allow_zero=True)


def sanitize_name(name: str) -> str:
    """
    Turn a login name into a display name: drop whitespace and
    unprintable characters and cut it to 32 characters.

    @return: a valid name, or C{"user"} if nothing usable is left.
    """
    kept = "".join(c for c in name if c.isprintable() and not c.isspace())
    kept = nfc(kept)[:MAX_NAME_LENGTH]
    return kept if validate_name(kept) else FALLBACK_NAME


def default_name(getuser: Callable[[], str] = getpass.getuser) -> str:
    """
    @return: the login name made into a valid display name, or C{"user"}
        when it cannot be found.
    """
    try:
        login = getuser()
    except Exception:  # getuser raises OSError, KeyError or ImportError
        return FALLBACK_NAME
    return sanitize_name(login) if isinstance(login, str) else FALLBACK_NAME


def default_data_dir(
    name: str,
    environ: Mapping[str, str],
    user_data_dir: Callable[[str], str],
) -> str:
    """
    @param environ: the process environment.
    @param user_data_dir: L{platformdirs.user_data_dir}, or a stand-in.

    @return: the first directory of C{$STATE_DIRECTORY} (set by systemd's
        C{StateDirectory=}, possibly several joined with colons) when set,
        else C{user_data_dir("p2pchat")/NAME}.
    """
    state_directories = environ.get("STATE_DIRECTORY", "")
    first = state_directories.split(":")[0]
    if first:
        return first
    return os.path.join(user_data_dir("p2pchat"), name)


def default_console(port: Optional[int]) -> str:
    """
    @param port: the peer port, or L{None} if unknown.

    @return: the console endpoint on the loopback interface: port+1, any
        free port when C{port} is 0, and 9091 when C{port} is unknown.
    @raise usage.UsageError: when port+1 is not a port.
    """
    if port is None:
        console_port = DEFAULT_CONSOLE_PORT
    elif port == 0:
        console_port = 0
    elif port < 65535:
        console_port = port + 1
    else:
        raise usage.UsageError(
            "--console: no default console port (--port + 1) for port "
            "65535; give --console ENDPOINT or --console none"
        )
    return f"tcp:{console_port}:interface=127.0.0.1"


def default_stdio(stdin: Optional[TextIO]) -> bool:
    """
    @return: whether C{stdin} is an open terminal.
    """
    if stdin is None:
        return False
    try:
        return bool(stdin.isatty())
    except (AttributeError, ValueError, OSError):
        return False


def _user_data_dir(appname: str) -> str:
    import platformdirs

    return platformdirs.user_data_dir(appname)


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
            "ssl:9090:privateKey=key.pem, unix:/run/p2pchat.sock, "
            "systemd:domain=INET:index=0; 'none' for no listener. "
            "Cannot be combined with --port.",
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
    ) -> None:
        """
        The arguments replace the process's environment and standard input,
        the login name lookup and the platform data directory (for tests);
        by default the real ones are read when the options are parsed.
        """
        super().__init__()
        self._environ = environ
        self._stdin = stdin
        self._getuser = getuser
        self._user_data_dir = user_data_dir
        self.peers: List[PeerAddress] = []

    def opt_peer(self, peer: str) -> None:
        """Connect to the peer at HOST:PORT (IPv6: [ADDR]:PORT); repeatable."""
        address = parse_peer(peer)
        if address not in self.peers:
            self.peers.append(address)

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
        )
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
                name, environ, self._user_data_dir or _user_data_dir
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
        if not (_ASCII_DIGITS.match(text) and 1 <= int(text) <= MAX_LINKS_LIMIT):
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
        if _ASCII_DIGITS.match(text):
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
