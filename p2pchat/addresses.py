# -*- test-case-name: tests.unit.test_addresses -*-
"""
Peer addresses, C{HOST:PORT}: one pure parser shared by the command line
(L{p2pchat.options_checks.parse_peer}, the console's C{/connect}) and the wire (the
C{addr} of a hello and of a membership gossip row, L{p2pchat.mesh.wire.valid_address}).

HOST is an IPv4 address, a bracketed IPv6 address (C{[::1]:9090}) or a
host name following the RFC 1123 label rules; PORT is decimal, 1-65535.
Nothing else is an address: no spaces, no user part, no path, no zone.
"""

import ipaddress
import re
from dataclasses import dataclass
from typing import Tuple

_ASCII_DIGITS = re.compile(r"[0-9]+\Z")
_HOSTNAME_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)\Z")


class AddressError(ValueError):
    """
    Text is not a C{HOST:PORT} address; C{str(error)} says why.
    """


def is_valid_host(host: str) -> bool:
    """
    @return: whether C{host} is an IPv4 address, an IPv6 address (without
        brackets) or a host name following the RFC 1123 label rules (labels
        of 1-63 letters, digits and hyphens, not starting or ending with a
        hyphen, 253 characters at most, last label not all digits).
    """
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return True
    if not host or len(host) > 253:
        return False
    labels = host.split(".")
    if not all(_HOSTNAME_LABEL.match(label) for label in labels):
        return False
    # "1.2.3.999" is not an IPv4 address and must not pass as a name either.
    return not labels[-1].isdigit()


def parse_port_text(text: str, allow_zero: bool = False) -> int:
    """
    @return: C{text} as a TCP port number.
    @raise AddressError: if it is not a decimal integer in 1-65535 (or
        0-65535 with C{allow_zero}).
    """
    low = 0 if allow_zero else 1
    if _ASCII_DIGITS.match(text) and low <= int(text) <= 65535:
        return int(text)
    raise AddressError(f"must be an integer {low}-65535, got {text!r}")


def parse_address(text: str) -> Tuple[str, int]:
    """
    Parse C{HOST:PORT}.

    @return: the host (an IPv6 address without its brackets) and the port.
    @raise AddressError: saying what is wrong.
    """
    if text.startswith("["):
        close = text.find("]")
        if close == -1 or text[close + 1 : close + 2] != ":":
            raise AddressError(f"expected [IPV6]:PORT, got {text!r}")
        host, port_text = text[1:close], text[close + 2 :]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise AddressError(f"not a valid IPv6 address: {host!r} in {text!r}") from None
    else:
        host, colon, port_text = text.rpartition(":")
        if not colon:
            raise AddressError(f"expected HOST:PORT, got {text!r}")
        if ":" in host:
            raise AddressError(
                f"put an IPv6 address in brackets, like [::1]:9090, got {text!r}"
            )
        if not is_valid_host(host):
            raise AddressError(f"not a valid host name or IP address: {host!r} in {text!r}")
    return host, parse_port_text(port_text)


def format_address(host: str, port: int) -> str:
    """
    @return: C{HOST:PORT}, with an IPv6 host in brackets.
    """
    if ":" in host:
        return f"[{host}]:{port}"
    return f"{host}:{port}"


@dataclass(frozen=True)
class PeerAddress:
    """
    A peer given as C{HOST:PORT}.

    @ivar host: a host name, an IPv4 address or an IPv6 address (without
        brackets).
    @ivar port: the TCP port, 1-65535.
    """

    host: str
    port: int

    def __str__(self) -> str:
        return format_address(self.host, self.port)


def parse_peer_address(text: str) -> PeerAddress:
    """
    L{parse_address}, as a L{PeerAddress}.

    @raise AddressError: saying what is wrong.
    """
    return PeerAddress(*parse_address(text))


def is_canonical_address(text: object) -> bool:
    """
    @return: whether C{text} is a string that L{parse_address} accepts and
        that L{format_address} writes back unchanged (so the port has no
        leading zeros): the one accepted spelling of an address on the wire.
    """
    if not isinstance(text, str) or not text.isascii():
        return False
    try:
        host, port = parse_address(text)
    except AddressError:
        return False
    return format_address(host, port) == text
