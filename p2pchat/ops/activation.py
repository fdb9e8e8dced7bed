"""
Server endpoints from strings, with socket activation that works under any
activator.

Twisted's C{systemd:} endpoint (L{twisted.python.systemd.ListenFDs}) only
believes in inherited sockets when C{$LISTEN_FDS} and C{$LISTEN_FDNAMES}
are both set and agree.  C{$LISTEN_FDNAMES} is optional in the protocol
(sd_listen_fds(3): it "may contain" names), and activators other than
systemd itself -- C{systemd-socket-activate} without C{--fdname}, as its
man page shows, inetd-style supervisors, container runtimes -- leave it
out; then Twisted sees no descriptor at all and
C{systemd:domain=INET:index=0} fails with C{IndexError}.  The requirement
came with named descriptors, U{twisted/twisted#11691
<https://github.com/twisted/twisted/pull/11691>} (for #8146 and #8147); no
Twisted ticket for the missing-names case was found when this was written,
so this should be reported upstream.

There is a second trap: importing L{twisted.internet.endpoints} runs
C{ListenFDs.fromEnvironment()} on C{os.environ}, which deletes
C{$LISTEN_FDS} and C{$LISTEN_PID} from it even when it then ignores them
for want of names -- so by the time a node builds its listeners they are
gone from C{os.environ}.  The kernel keeps the environment the process was
started with in C{/proc/self/environ}; the C{LISTEN_*} variables are read
from there when C{os.environ} no longer has them.

L{server_endpoint} builds C{systemd:} endpoints itself, from public
Twisted APIs: it reads the descriptors with L{ListenFDs.fromEnvironment}
given (a copy of) an environment in which a missing C{$LISTEN_FDNAMES} is
filled in as systemd documents its default (every descriptor named
C{unknown}), and adopts the chosen one with L{AdoptedStreamServerEndpoint}.
The C{$LISTEN_PID} check stays Twisted's.  Every other type goes to
L{endpoints.serverFromString} unchanged.
"""

import os
import socket
from typing import Callable, Dict, Mapping, Optional

from twisted.internet import endpoints
from twisted.python.systemd import ListenFDs

# The name sd_listen_fds_with_names(3) reports for a descriptor that has
# none.
UNNAMED = "unknown"
_VARIABLES = ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES")


def initial_environment(path: str = "/proc/self/environ") -> Dict[str, str]:
    """
    @return: the environment this process was started with (Linux), or
        C{{}} if it cannot be read.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return {}
    environ = {}
    for item in data.split(b"\0"):
        key, equals, value = item.partition(b"=")
        if equals:
            environ[key.decode("utf-8", "replace")] = value.decode("utf-8", "replace")
    return environ


def inherited_environment(
    environ: Mapping[str, str], initial: Callable[[], Mapping[str, str]]
) -> Dict[str, str]:
    """
    @param environ: the current environment.
    @param initial: returns the environment the process started with.
    @return: a new mapping with the C{LISTEN_*} variables: from
        C{environ} if it still has C{$LISTEN_FDS}, else from C{initial()};
        with C{$LISTEN_FDNAMES} filled in by L{activation_environment}.
    """
    source = environ if "LISTEN_FDS" in environ else initial()
    found = {key: source[key] for key in _VARIABLES if key in source}
    return dict(activation_environment(found))


def activation_environment(environ: Mapping[str, str]) -> Mapping[str, str]:
    """
    @param environ: a process environment.
    @return: C{environ}, or a copy in which a missing C{$LISTEN_FDNAMES}
        names each of the C{$LISTEN_FDS} descriptors C{unknown}.
    """
    if "LISTEN_FDNAMES" in environ:
        return environ
    try:
        count = int(environ.get("LISTEN_FDS", ""))
    except ValueError:
        return environ
    if count <= 0:
        return environ
    return dict(environ, LISTEN_FDNAMES=":".join([UNNAMED] * count))


def _systemd_arguments(description: str) -> dict:
    """
    Parse C{systemd:domain=INET:index=0} (or C{name=NAME}; positional
    C{systemd:INET:0} too) the way Twisted's parser takes them.

    @raise ValueError: on anything else.
    """
    fields = description.split(":")[1:]
    if any("\\" in field for field in fields):
        raise ValueError(f"escapes are not supported in {description!r}")
    arguments: dict = {}
    positional = ["domain", "index", "name"]
    for field in fields:
        key, equals, value = field.partition("=")
        if not equals:
            if not positional:
                raise ValueError(f"too many arguments in {description!r}")
            key, value = positional.pop(0), field
        elif key not in ("domain", "index", "name"):
            raise ValueError(f"unknown argument {key!r} in {description!r}")
        if key in arguments:
            raise ValueError(f"{key} given twice in {description!r}")
        if key in positional:
            positional.remove(key)
        arguments[key] = value
    if "domain" not in arguments:
        raise ValueError(f"systemd endpoint needs domain=INET|INET6|UNIX: {description!r}")
    if ("index" in arguments) == ("name" in arguments):
        raise ValueError(f"give exactly one of index= and name= in {description!r}")
    return arguments


def systemd_endpoint(
    reactor,
    description: str,
    environ: Optional[Mapping[str, str]] = None,
    initial: Callable[[], Mapping[str, str]] = initial_environment,
) -> endpoints.AdoptedStreamServerEndpoint:
    """
    @param description: a C{systemd:} endpoint string.
    @param environ: the environment to read (default C{os.environ}).
    @param initial: returns the environment the process started with,
        read when C{environ} has no C{$LISTEN_FDS}.
    @return: an endpoint that adopts the inherited listening socket.
    @raise ValueError: if the description is bad, or there is no such
        inherited socket (the message says how many there are).
    """
    arguments = _systemd_arguments(description)
    family = getattr(socket, "AF_" + arguments["domain"], None)
    if not isinstance(family, int):
        raise ValueError(f"unknown domain {arguments['domain']!r} in {description!r}")
    fds = ListenFDs.fromEnvironment(
        environ=inherited_environment(os.environ if environ is None else environ, initial)
    )
    descriptors = fds.inheritedDescriptors()
    if "index" in arguments:
        try:
            index = int(arguments["index"])
        except ValueError:
            raise ValueError(f"index is not a number in {description!r}") from None
        if not 0 <= index < len(descriptors):
            raise ValueError(
                f"no inherited socket at index {index}: {len(descriptors)} inherited "
                "(is $LISTEN_FDS set, and $LISTEN_PID this process?)"
            )
        fileno = descriptors[index]
    else:
        named = fds.inheritedNamedDescriptors()
        if arguments["name"] not in named:
            raise ValueError(
                f"no inherited socket named {arguments['name']!r}: have "
                f"{sorted(named) or 'none'}"
            )
        fileno = named[arguments["name"]]
    return endpoints.AdoptedStreamServerEndpoint(reactor, fileno, family)


def server_endpoint(
    reactor,
    description: str,
    environ: Optional[Mapping[str, str]] = None,
    initial: Callable[[], Mapping[str, str]] = initial_environment,
):
    """
    L{endpoints.serverFromString}, except that C{systemd:} endpoints are
    built by L{systemd_endpoint}.
    """
    if description.split(":", 1)[0] == "systemd":
        return systemd_endpoint(reactor, description, environ, initial)
    return endpoints.serverFromString(reactor, description)
