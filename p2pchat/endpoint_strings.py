"""
Endpoint description strings (C{tcp:9090:interface=127.0.0.1}), read
without Twisted's private parser.

The grammar is the one L{twisted.internet.endpoints.serverFromString}
documents: fields separated by C{:}; a backslash makes the next character
literal; a field with an C{=} is a keyword argument (the first unescaped
C{=} ends the key, the value may hold more), any other field a positional
one.  The first positional field is the endpoint type.

L{check_arguments} checks the arguments of Twisted's built-in types
(C{tcp}, C{unix}, C{ssl}) against the signatures their parsers document,
and L{plugin_prefixes} lists the types plugins add (C{tcp6}, C{systemd},
...), through the public plugin interface.
"""

import inspect
import ipaddress
from typing import Dict, List, Set, Tuple

from twisted.internet.interfaces import IStreamServerEndpointStringParser
from twisted.plugin import getPlugins


def parse(description: str) -> Tuple[List[str], Dict[str, str]]:
    """
    @return: C{(args, kwargs)}: the positional fields (the type first) and
        the keyword ones.
    @raise ValueError: if the description ends with a lone backslash.
    """
    args: List[str] = []
    kwargs: Dict[str, str] = {}
    fields: List[List[str]] = [[""]]
    after_equals = False
    characters = iter(description)
    for character in characters:
        if character == ":":
            fields.append([""])
            after_equals = False
        elif character == "=" and not after_equals:
            fields[-1].append("")
            after_equals = True
        elif character == "\\":
            try:
                fields[-1][-1] += next(characters)
            except StopIteration:
                raise ValueError(f"{description!r} ends with a lone backslash") from None
        else:
            fields[-1][-1] += character
    for field in fields:
        if len(field) == 1:
            args.append(field[0])
        else:
            kwargs[field[0]] = field[1]
    return args, kwargs


# The built-in server types and the arguments their parsers take (as
# documented for serverFromString), after the factory.
def _tcp(port, interface="", backlog=50):
    pass


def _unix(address, mode="666", backlog=50, lockfile=True):
    pass


def _ssl(port, privateKey="server.pem", certKey=None, sslmethod=None, interface="",
         backlog=50, extraCertChain=None, dhParameters=None):
    pass


BUILTIN = {"tcp": _tcp, "unix": _unix, "ssl": _ssl}


def check_arguments(endpoint_type: str, args: List[str], kwargs: Dict[str, str]) -> None:
    """
    @param args: the positional arguments after the type.
    @raise TypeError: if a built-in type does not take these arguments.
    """
    signature = BUILTIN.get(endpoint_type)
    if signature is not None:
        inspect.signature(signature).bind(*args, **kwargs)


def plugin_prefixes() -> Set[str]:
    """
    @return: the endpoint types that installed plugins provide.
    """
    return {plugin.prefix for plugin in getPlugins(IStreamServerEndpointStringParser)}


def listens_beyond_loopback(description: str) -> bool:
    """
    Tell whether a server endpoint string may accept connections from other
    machines.

    C{tcp}, C{tcp6} and C{ssl} endpoints are local only with an
    C{interface} that is a loopback address (or C{localhost}); C{unix}
    endpoints are local; anything else (C{systemd:} sockets, plugins) is
    assumed reachable, since this cannot tell.

    Use it to warn when the manhole or the line console is bound off
    loopback.
    """
    try:
        args, kwargs = parse(description)
    except Exception:
        return True
    if not args:
        return True
    endpoint_type = args[0]
    if endpoint_type == "unix":
        return False
    if endpoint_type not in ("tcp", "tcp6", "ssl"):
        return True
    interface = kwargs.get("interface")
    if interface is None and endpoint_type in ("tcp", "tcp6") and len(args) > 2:
        interface = args[2]
    if not interface:
        return True
    if interface.lower() == "localhost":
        return False
    try:
        return not ipaddress.ip_address(interface.strip("[]")).is_loopback
    except ValueError:
        return True
