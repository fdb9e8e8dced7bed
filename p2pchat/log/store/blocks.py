# -*- test-case-name: tests.unit.test_store -*-
"""
The block list: the authors this node's user blocked.  A local
preference, not part of the replicated log, kept in the store's file as
append-only block and unblock events (the last one for an author wins).
"""

from typing import List

from p2pchat.log.store.schema import Database


class BlockList:
    """
    The block events of one store's L{Database}.
    """

    def __init__(self, database: Database):
        self._database = database

    def blocked(self) -> List[str]:
        """
        @return: the authors blocked now, ascending.
        """
        rows = self._database.query(
            "SELECT author FROM block_events AS e "
            "WHERE blocked = 1 AND rowid = "
            "(SELECT max(rowid) FROM block_events WHERE author = e.author) "
            "ORDER BY author"
        )
        return [row[0] for row in rows]

    def block(self, author: str) -> None:
        """
        Remember that the user blocked C{author}.
        """
        self._database.write(
            "INSERT INTO block_events (author, blocked) VALUES (?, 1)", (author,)
        )

    def unblock(self, author: str) -> None:
        """
        Forget that the user blocked C{author}.
        """
        self._database.write(
            "INSERT INTO block_events (author, blocked) VALUES (?, 0)", (author,)
        )
