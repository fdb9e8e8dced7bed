# -*- test-case-name: tests.unit.test_peer -*-
"""
Callbacks for the loss of one link's connection.
"""

from typing import Callable, List

from twisted.logger import Logger
from twisted.python.failure import Failure


class LostCallbacks:
    """
    Whoever asked is told, once, that a link's connection is lost.
    """

    def __init__(self, describe: Callable[[], str]):
        self._describe = describe
        self._callbacks: List[Callable[[Failure], None]] = []

    def add(self, callback: Callable[[Failure], None]) -> None:
        self._callbacks.append(callback)

    def run(self, reason: Failure, log: Logger) -> None:
        """
        Call each callback with C{reason}; one that fails is logged and
        must not keep the others, or the link's own clean-up, from running.
        """
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(reason)
            except Exception:
                log.failure("a link-lost callback failed for {peer}", peer=self._describe())
