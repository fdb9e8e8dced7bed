"""
p2pchat: a decentralized chat service built on Twisted.

Every user runs a node; nodes speak a JSON-lines protocol to each other and
replicate one signed, append-only message log.
"""

__version__ = "0.4.0"
