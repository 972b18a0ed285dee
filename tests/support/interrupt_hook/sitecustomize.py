"""Loaded at start-up by a test's child process (PYTHONPATH): SIGINT to itself at the moment the module named in
EXCAP_TEST_INTERRUPT_AT starts to import, inside a library-style `try: ... except: pass` that swallows the
KeyboardInterrupt it raises, as some libraries do around their optional imports. The process must still stop."""

import os
import signal
import sys
import threading

_TARGET = os.environ.get("EXCAP_TEST_INTERRUPT_AT")


class _InterruptOnImport:
    fired = False

    def find_spec(self, name, path=None, target=None):
        if name != _TARGET or self.fired:
            return None
        self.fired = True
        try:
            # to the main thread itself: its handler runs at one of the next bytecodes, here
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
            for _ in range(1000):
                pass
        except BaseException:  # swallowed on purpose, like the libraries it stands for
            pass
        with open(os.environ["EXCAP_TEST_INTERRUPT_DONE"], "w") as marker:
            marker.write(_TARGET)
        return None


if _TARGET:
    sys.meta_path.insert(0, _InterruptOnImport())
