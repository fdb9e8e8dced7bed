"""
The C{twistd p2pchat} plugin.  It names L{p2pchat.tap} without importing it,
so C{twistd --help} stays fast.  This directory must not have an
C{__init__.py}: it extends Twisted's own C{twisted.plugins} package.
"""

from twisted.application.service import ServiceMaker

p2pchat = ServiceMaker(
    "p2pchat",
    "p2pchat.tap",
    "A decentralized chat node: peers replicate one signed message log.",
    "p2pchat",
)
