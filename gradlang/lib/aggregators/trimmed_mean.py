"""TrimmedMean: the coordinate-wise mean without the extreme values."""

from __future__ import annotations

import jax.numpy as jnp

from . import AGGREGATORS, build, require


@AGGREGATORS.register("trimmed_mean", cite="Yin et al., Byzantine-Robust Distributed Learning: Towards "
                      "Optimal Statistical Rates, ICML 2018")
def trimmed_mean(trim_number):
    """Trimmed mean: d_k = mean of the sorted column J[:, k] without its trim_number largest and
    smallest entries (m - 2 trim_number values).  Coordinate-wise, so not a weighting of the
    rows: it reads J and returns the direction itself."""
    require(int(trim_number) == trim_number and trim_number >= 0,
            "trimmed_mean: trim_number must be a non-negative integer")
    t = int(trim_number)

    def direction(J, state, key):
        m = J.shape[0]
        require(m >= 2 * t + 1, f"trimmed_mean: needs at least 2 trim_number + 1 = {2 * t + 1} objectives, got {m}")
        return jnp.sort(J, axis=0)[t:m - t].mean(axis=0), state

    return build("trimmed_mean", direction, stat="direction", trim_number=trim_number)
