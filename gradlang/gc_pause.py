"""Python's cyclic garbage collector paused while gradlang builds a program.

A full collection walks every object the process holds, several hundred thousand once JAX, NumPyro
and SciPy are imported, and parsing, checking, tracing and lowering a program allocate enough
containers to set off several of them: 0.13-0.16 s of a 0.7 s first fit of a lasso (fista,
m = 1000, n = 2000), and 0.09 of the 0.1 s the parser's tables take to load.  So the collector is
off while ``gradlang.compile`` runs, and in ``fit`` until the loop's first chunk is dispatched;
the loop itself, where a user's progress callback runs, collects as usual.  Nothing is lost: the
garbage made meanwhile is collected by the next collection.  Pauses nest (a fit compiling a
program with new consts); the collector comes back when the outermost ends, and only if it was on
when that began.  The ``gradlang`` command also freezes the objects of its imports
(``gc.freeze``), which it may: the process is its own.
"""

from __future__ import annotations

import gc
import threading
from typing import Self

_lock = threading.Lock()
_state = {"depth": 0, "was_enabled": False}


class paused:
    """The collector off from construction until ``resume()`` or the end of a ``with`` block."""

    def __init__(self):
        with _lock:
            if _state["depth"] == 0:
                _state["was_enabled"] = gc.isenabled()
                gc.disable()
            _state["depth"] += 1
        self._live = True

    def resume(self) -> None:
        """End this pause (again: nothing)."""
        if not self._live:
            return
        self._live = False
        with _lock:
            _state["depth"] -= 1
            if _state["depth"] == 0 and _state["was_enabled"]:
                gc.enable()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.resume()
