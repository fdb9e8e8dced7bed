# -*- test-case-name: tests.unit.test_tap -*-
"""
The checks and defaults behind each C{twistd p2pchat} option, one pure
function each: they read no file, open no socket and raise
L{usage.UsageError} naming the option, so L{p2pchat.tap.Options} only
strings them together.
"""

import getpass
import os
import re
from typing import Callable, Mapping, Optional, TextIO

from twisted.python import usage

from p2pchat import endpoint_strings
from p2pchat.addresses import (
    AddressError,
    is_valid_host,
    parse_peer_address,
    parse_port_text,
)
from p2pchat.canonical import nfc
from p2pchat.config import PeerAddress
from p2pchat.log.entry import validate_name

DEFAULT_PORT = 9090
DEFAULT_CONSOLE_PORT = DEFAULT_PORT + 1
FALLBACK_NAME = "user"
MAX_NAME_LENGTH = 32

# Endpoint types whose first argument (or "port=") is a TCP port number.
_PORT_ENDPOINT_TYPES = ("tcp", "tcp6", "ssl")

_ASCII_DIGITS = re.compile(r"[0-9]+\Z")


def is_decimal(text: str) -> bool:
    """
    @return: whether C{text} is ASCII digits only (no sign, no space).
    """
    return bool(_ASCII_DIGITS.match(text))


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


def platform_data_dir(appname: str) -> str:
    """
    @return: L{platformdirs.user_data_dir} of C{appname} (imported only
        when needed: C{twistd --help} stays fast).
    """
    import platformdirs

    return platformdirs.user_data_dir(appname)
