"""XLA compiles of a run's executables on a worker thread, while the host initialises the solver."""

from __future__ import annotations

import threading


class Ahead:
    """XLA compiles of lowered executables, in order, on a worker thread.  A failed compile is
    dropped: the run's own call compiles again and reports the error where it belongs."""

    def __init__(self, lowered: list, loop_executables: int):
        self.loop_executables = loop_executables  # the first ones: what the loop calls
        self._done = [threading.Event() for _ in lowered]
        self._thread = threading.Thread(target=self._compile, args=(lowered,), daemon=True)
        self._thread.start()

    def _compile(self, lowered: list) -> None:
        for low, done in zip(lowered, self._done):
            try:
                low.compile()
            except Exception:  # noqa: BLE001,S110 -- see the class docstring
                pass
            finally:
                done.set()

    def wait(self, n: int | None = None) -> None:
        """Wait for the first ``n`` compiles (all by default) before calling one of them: JAX
        would otherwise compile it a second time beside the first."""
        for done in self._done[:n]:
            done.wait()
