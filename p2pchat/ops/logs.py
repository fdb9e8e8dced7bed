# -*- test-case-name: tests.integration.test_ops -*-
"""
Log formats on standard output: C{text} (twistd's timestamped lines, which
suit journald) or C{json} (one twisted.logger JSON event per line).

twistd chooses its log observer B{after} the plugin has built the service
and B{before} it starts it: C{AppLogger.start(application)} uses, in order,
C{twistd --logger=FACTORY}, then an C{ILogObserver} component of the
application, then its own text observer.  So there are two ways to get
JSON:

  1. C{twistd --logger=p2pchat.ops.logs.json_observer -n p2pchat ...}: twistd
     calls L{json_observer}; this works with any twistd plugin.
  2. C{twistd -n p2pchat --log-format json ...}: the service calls
     L{use_log_format} with the application when twistd attaches it
     (C{NodeService.setServiceParent}), which sets the application's
     C{ILogObserver} component before twistd reads it.

Either way the JSON observer sees every event from the first one, with no
text lines before it and no observer to remove later.  (Swapping observers
after logging began would mean reaching into twistd's private state; and by
then C{sys.stdout} is a C{LoggingFile} that feeds back into the log, so an
observer writing to it would loop.)
"""

import sys
from typing import IO, Any, Optional

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    jsonFileLogObserver,
    textFileLogObserver,
)

LOG_FORMATS = ("text", "json")


def observer_for(log_format: str, stream: IO[Any]) -> FileLogObserver:
    """
    @param log_format: C{text} or C{json}.
    @param stream: where the lines go (a text file).
    @return: an observer writing C{text} lines (RFC 3339 timestamp, system,
        message) or C{json} lines (one event per line, no record
        separator, so C{jq} and journald read them as they are).
    @raise ValueError: for another format.
    """
    if log_format == "json":
        return jsonFileLogObserver(stream, recordSeparator="")
    if log_format == "text":
        return textFileLogObserver(stream)
    raise ValueError(f"unknown log format {log_format!r}; expected one of {LOG_FORMATS}")


def json_observer() -> FileLogObserver:
    """
    The factory for C{twistd --logger=p2pchat.ops.logs.json_observer}: JSON
    events, one per line, on standard output.

    twistd calls it before it redirects C{sys.stdout} into the log, so
    C{sys.stdout} is still the real output here.
    """
    return observer_for("json", sys.stdout)


def use_log_format(
    application, log_format: str, stream: Optional[IO[Any]] = None
) -> bool:
    """
    Make twistd log in C{log_format}, if it has not chosen an observer yet.

    Call it from the service's C{setServiceParent(parent)}: twistd attaches
    the plugin's service to its C{Application} before it starts logging.
    C{text} changes nothing (twistd's own observer writes timestamped lines
    to standard output under C{--nodaemon}, or to C{--logfile}).  For
    C{json} the application gets an C{ILogObserver} component, unless it
    already has one; C{twistd --logger=...} still wins over it, and
    C{--logfile}/C{--syslog} are then not used.

    @param application: the parent the service is attached to; anything
        other than a componentized twistd application is left alone (e.g.
        a plain C{MultiService} in tests).
    @param log_format: C{text} or C{json}.
    @param stream: where JSON lines go; by default C{sys.stdout} as it is
        now.
    @return: whether a JSON observer was set.
    @raise ValueError: for an unknown format.
    """
    if log_format not in LOG_FORMATS:
        raise ValueError(f"unknown log format {log_format!r}; expected one of {LOG_FORMATS}")
    if log_format != "json":
        return False
    set_component = getattr(application, "setComponent", None)
    get_component = getattr(application, "getComponent", None)
    if set_component is None or get_component is None:
        return False
    if get_component(ILogObserver, None) is not None:
        return False
    set_component(ILogObserver, observer_for("json", stream or sys.stdout))
    return True
