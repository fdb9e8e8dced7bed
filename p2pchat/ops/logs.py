# -*- test-case-name: tests.integration.test_ops -*-
"""
Log formats on standard output: C{text} (twistd's timestamped lines, which
suit journald) or C{json} (one object per line, as log shippers expect:
L{json_record}).

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

import datetime
import json
import math
import sys
from typing import IO, Any, Dict, Optional

from twisted.logger import (
    FileLogObserver,
    ILogObserver,
    formatEvent,
    textFileLogObserver,
)

LOG_FORMATS = ("text", "json")

# Keys of the record itself; an event field of the same name is left out.
_RECORD_KEYS = ("time", "level", "message", "namespace", "traceback")
# Fields of legacy twisted.python.log events that the record already says.
_LEGACY_KEYS = ("message", "time", "format", "isError", "failure", "why")


def _json_safe(value: Any, depth: int = 0) -> Any:
    """
    @return: C{value} as JSON can hold it: strings, finite numbers,
        booleans and C{null} as they are, lists and string-keyed objects
        field by field, anything else (bytes, addresses, ...) as its
        C{str}.
    """
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if depth < 4 and isinstance(value, (list, tuple, set, frozenset)):
        return [_json_safe(item, depth + 1) for item in value]
    if depth < 4 and isinstance(value, dict):
        return {str(key): _json_safe(item, depth + 1) for key, item in value.items()}
    return str(value)


def json_record(event: Dict[str, Any]) -> Dict[str, Any]:
    """
    The JSON log record of a twisted.logger C{event}: C{time} (ISO 8601,
    UTC), C{level} (C{debug}, C{info}, C{warn}, C{error}, C{critical}),
    the rendered C{message}, the C{namespace}, C{traceback} when the event
    carries a failure, and the event's own fields made JSON-safe.  Twisted's
    bookkeeping (C{log_*} keys: the template, the logger, the level object)
    is left out.
    """
    when = event.get("log_time")
    level = event.get("log_level")
    record: Dict[str, Any] = {
        "time": (
            datetime.datetime.fromtimestamp(when, datetime.timezone.utc).isoformat()
            if isinstance(when, (int, float)) else None
        ),
        "level": getattr(level, "name", "info"),
        "message": formatEvent(event),
        "namespace": event.get("log_namespace"),
    }
    failure = event.get("log_failure")
    if failure is not None:
        record["traceback"] = failure.getTraceback()
    for key, value in event.items():
        if key.startswith("log_") or key in _RECORD_KEYS or key in _LEGACY_KEYS:
            continue
        record[key] = _json_safe(value)
    return record


def json_line(event: Dict[str, Any]) -> str:
    """
    @return: L{json_record} of C{event} as one line of JSON (control and
        non-ASCII characters escaped), with its newline.
    """
    return json.dumps(json_record(event), sort_keys=False) + "\n"


def observer_for(log_format: str, stream: IO[Any]) -> FileLogObserver:
    """
    @param log_format: C{text} or C{json}.
    @param stream: where the lines go (a text file).
    @return: an observer writing C{text} lines (RFC 3339 timestamp, system,
        message) or C{json} lines (one L{json_record} per line, no
        record separator, so C{jq} and journald read them as they are).
    @raise ValueError: for another format.
    """
    if log_format == "json":
        return FileLogObserver(stream, json_line)
    if log_format == "text":
        return textFileLogObserver(stream)
    raise ValueError(f"unknown log format {log_format!r}; expected one of {LOG_FORMATS}")


def json_observer() -> FileLogObserver:
    """
    The factory for C{twistd --logger=p2pchat.ops.logs.json_observer}: JSON
    records, one per line, on standard output.

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
