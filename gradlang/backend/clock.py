"""How long a chunk of the loop runs: about ``TARGET_SECONDS`` of device time, by the clock."""

from __future__ import annotations

import numpy as np

TARGET_SECONDS = 0.3   # how long a chunk should run: the host looks about three times a second
GROWTH = 16            # a chunk is at most this many times longer than the one timed before it
KEY_BUFFER = 16384     # the step keys a chunk is given, so the most steps it runs


class Clock:
    """Chunk lengths from the clock: about ``TARGET_SECONDS`` of device time a chunk, in whole
    segments, never more records than the buffer holds nor more steps than ``KEY_BUFFER``; the
    last segment of a run may be short."""

    def __init__(self, segment: int, capacity: int, steps: int):
        self.seg, self.steps = segment, steps
        # segments a chunk may hold: one record each (+ the last), and keys for their steps
        self.most = max(1, min(capacity - 1, KEY_BUFFER // segment))
        self.n = 1  # segments of the next chunk: the first two are one each, dispatched untimed

    def observe(self, steps: int, seconds: float) -> None:
        """A chunk of ``steps`` steps ran for ``seconds``: size the next ones from its rate."""
        if steps <= 0:
            return
        want = steps * TARGET_SECONDS / max(seconds, 1e-6) / self.seg
        self.n = int(np.clip(want, 1, max(1, steps // self.seg) * GROWTH))

    def plan(self, t0: int) -> tuple[int, int]:
        """``(segment length, end)`` of the chunk starting at ``t0``."""
        if t0 % self.seg:  # realign (a checkpoint of another segment length)
            b = min(self.seg - t0 % self.seg, self.steps - t0)
            return b, t0 + b
        whole = self.steps - self.steps % self.seg
        if t0 >= whole:  # the short last segment
            return self.steps - t0, self.steps
        return self.seg, min(t0 + min(self.n, self.most) * self.seg, whole)
