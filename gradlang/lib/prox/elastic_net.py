"""elastic_net(x, l1, l2): l1 times the l1 norm plus l2 times the squared l2 norm."""

from __future__ import annotations

from typing import Any, ClassVar

import jax.numpy as jnp

from . import PARIKH_BOYD, PROXES, Prox, _is_scalar, soft_threshold


@PROXES.register("elastic_net", cite="Zou & Hastie, Regularization and variable selection via the "
                 f"elastic net, JRSS-B 67(2), 2005; {PARIKH_BOYD}, §6.5 (norms)")
class ElasticNet(Prox):
    """f(x) = l1 Σ_i |x_i| + l2 Σ_i x_i²  (l1, l2 >= 0; l2 multiplies gradlang's sumsq, no 1/2);

    prox_{t f}(v) = sign(v) max(|v| - t l1, 0) / (1 + 2 t l2).

    l1 and l2 are scalars or arrays broadcasting against x (one weight per entry).
    """

    name: ClassVar[str] = "elastic_net"
    l1: Any = 1.0
    l2: Any = 1.0
    separable = True
    sign_preserving = True

    @property
    def uniform(self):
        return _is_scalar(self.l1) and _is_scalar(self.l2)

    def value(self, x):
        return jnp.sum(self.l1 * jnp.abs(x) + self.l2 * jnp.square(x))

    def _prox(self, v, t):
        l1 = jnp.asarray(self.l1, v.dtype)
        l2 = jnp.asarray(self.l2, v.dtype)
        return soft_threshold(v, t * l1) / (1 + 2 * t * l2)
