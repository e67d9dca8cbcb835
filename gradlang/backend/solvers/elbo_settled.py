"""A stopping rule for a Monte-Carlo fit: the windowed mean of the objective stops improving.

Stan's ADVI (Kucukelbir, Tran, Ranganath, Gelman & Blei, "Automatic Differentiation Variational
Inference", JMLR 18, 2017, section 3.4; the Stan Reference Manual's "Variational inference")
estimates the ELBO every ``eval_elbo = 100`` steps and stops when its relative change falls below
``tol_rel_obj = 0.01``.  Relative to |ELBO| that tolerance grows with the data: on kidiq (434
rows) it is 19 nats, on diamonds (5000 rows) it stopped a fit still several posterior sds off.
Here the change is compared with what the Monte-Carlo noise lets one see instead.  The value
compared is the mean of the loss (the negated ELBO estimates the steps drew anyway: no extra
evaluation) over consecutive windows of ``every`` steps, with its standard error from the
window's own spread:

    m_k = mean of the loss over window k,   s_k^2 = its variance over the window / every,
    settled at the end of window k >= 2 when  |m_k - m_{k-1}| <= z sqrt(s_k^2 + s_{k-1}^2) + tol max(|m_k|, 1)

(z = 2; ``tol``, relative, 1e-5 by default, only keeps a noiseless objective from never settling).
Once the ELBO improves by less than its own noise per window, further steps mostly add noise,
which the iterate average then removes.  The carry is six numbers: the current window's sum and
sum of squares (both shifted by the window's first value, for float32), that value, the previous
window's mean and squared standard error, and the number of windows closed.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp


@dataclass(frozen=True)
class ElboSettled:
    every: int = 100
    z: float = 2.0
    tol: float = 1e-5

    def init(self) -> jnp.ndarray:
        return jnp.zeros((6,), jnp.float32)

    def update(self, carry: jnp.ndarray, loss, t) -> tuple[jnp.ndarray, jnp.ndarray]:
        """The carry after step ``t``'s loss, and whether the rule holds now."""
        total, squares, ref, previous, previous_se2, windows = (carry[i] for i in range(6))
        loss = loss.astype(jnp.float32)
        ref = jnp.where(t % self.every == 0, loss, ref)  # the window's first value
        x = loss - ref  # shifted: float32 sums of squares of values near 1e4 would lose the spread
        total, squares = total + x, squares + x * x
        closes = (t + 1) % self.every == 0
        shift = total / self.every
        mean = ref + shift
        se2 = jnp.maximum(squares / self.every - shift * shift, 0.0) / self.every
        bound = self.z * jnp.sqrt(se2 + previous_se2) + self.tol * jnp.maximum(jnp.abs(mean), 1.0)
        settled = closes & (windows >= 1) & (jnp.abs(mean - previous) <= bound)
        closed = jnp.stack([0.0, 0.0, ref, mean, se2, windows + 1])
        return jnp.where(closes, closed, jnp.stack([total, squares, ref, previous, previous_se2, windows])), settled
