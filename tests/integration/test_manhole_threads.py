"""
L{p2pchat.faces.manhole}'s password checks on the real reactor's thread
pool (the rest of the manhole tests are in C{tests.unit.test_manhole}).
"""

import os
import threading

import bcrypt
from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet import defer
from twisted.trial.unittest import TestCase

from p2pchat.faces import manhole as manhole_module


class ThreadedPasswordTests(TestCase):
    """
    With the default C{defer_to_thread}, bcrypt runs in the reactor's
    thread pool.
    """

    @defer.inlineCallbacks
    def test_bcrypt_runs_in_a_worker_thread(self):
        """
        A login with a bcrypt password succeeds, and bcrypt ran on a thread
        other than the reactor's.
        """
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "passwd")
        with open(path, "wb") as f:
            f.write(b"op:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)) + b"\n")
        threads = []
        real_checkpw = bcrypt.checkpw
        self.patch(
            bcrypt, "checkpw",
            lambda *a: threads.append(threading.get_ident()) or real_checkpw(*a),
        )
        checker = manhole_module._password_checker(path)
        avatar = yield checker.requestAvatarId(UsernamePassword(b"op", b"s3cret"))
        self.assertEqual(avatar, b"op")
        self.assertEqual(len(threads), 1)
        self.assertNotEqual(threads[0], threading.get_ident())
        with self.assertRaises(UnauthorizedLogin):
            yield checker.requestAvatarId(UsernamePassword(b"op", b"nope"))
