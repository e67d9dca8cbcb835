"""Gradient descent-ascent on the Lagrangian, with optimistic, extragradient and PI-controlled dual
updates."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import CONSTRAINT_METHODS

VARIANTS = ("gda", "optimistic", "extragradient", "nupi")


@dataclass(frozen=True)
class Lagrangian:
    dual_lr: float
    variant: str
    kp: float
    ki: float
    nu: float

    @property
    def extrapolates(self) -> bool:
        """Extragradient: the direction takes a look-ahead step of both players first (their
        gradients at the look-ahead point make the step), see ``ConstrainedDirection``."""
        return self.variant == "extragradient"

    @property
    def optimistic(self) -> bool:
        """ReLOAD is optimistic in both players: the direction gives the primal 2 g_t - g_{t-1} of
        the Lagrangian's gradient, as ``update`` does the dual (see ``ConstrainedDirection``)."""
        return self.variant == "optimistic"

    def init(self, shapes):
        zeros = [jnp.zeros(s, jnp.float32) for s in shapes]
        return {"multipliers": zeros, "previous": list(zeros), "smoothed": list(zeros),
                "started": jnp.asarray(False)}

    def loss(self, gs, kinds, state):
        return sum(jnp.sum(jax.lax.stop_gradient(m) * g) for g, m in zip(gs, state["multipliers"]))

    def update(self, state, gs, kinds, stationarity=None):
        out = {"multipliers": [], "previous": list(gs), "smoothed": [], "started": jnp.asarray(True)}
        started = state["started"]
        for g, k, m, prev, xi in zip(gs, kinds, state["multipliers"], state["previous"], state["smoothed"]):
            if self.variant in ("gda", "extragradient"):  # extragradient: g at the look-ahead point
                step = g
            elif self.variant == "optimistic":  # ReLOAD: the step extrapolated by the last change
                step = 2.0 * g - jnp.where(started, prev, g)
            else:  # nuPI as Cooper's nuPIOptimizer (init_type = SGD): ki e_t + kp (xi_t - xi_{t-1})
                step = self.ki * g + jnp.where(started, self.kp * (1.0 - self.nu) * (g - xi), 0.0)
                xi = jnp.where(started, self.nu * xi + (1.0 - self.nu) * g, 0.0)
            new = m + self.dual_lr * step
            out["multipliers"].append(jnp.maximum(new, 0.0) if k == "le" else new)
            out["smoothed"].append(xi)
        return out

    def multipliers(self, state):
        return state["multipliers"]


@CONSTRAINT_METHODS.register("lagrangian", cite="Arrow, Hurwicz & Uzawa 1958 (gradient descent-ascent); "
                             "Moskovitz et al., ReLOAD: Reinforcement learning with optimistic ascent-descent, "
                             "ICML 2023 (optimistic); Sohrabi et al., On PI controllers for updating Lagrange "
                             "multipliers in constrained optimization, ICML 2024 (nuPI, as in Cooper); "
                             "Korpelevich, The extragradient method for finding saddle points and other "
                             "problems, Ekonomika i Mat. Metody 1976 (extragradient; Cooper's "
                             "ExtrapolationConstrainedOptimizer, Gidel et al., ICLR 2019)")
def lagrangian(dual_lr=0.01, variant="gda", kp=0.0, ki=1.0, nu=0.0):
    """L = f + sum(lambda g): primal descent on L, dual ascent lambda += dual_lr * g each step,
    projected to lambda >= 0 for inequalities.  variant = gda | optimistic (ReLOAD, both players:
    lambda += dual_lr (2 g_t - g_{t-1}), and the primal steps along 2 grad_x L_t - grad_x L_{t-1}) |
    extragradient (both players step to a look-ahead point x', lambda' = [lambda + dual_lr g(x)]+
    with the primal optimizer, then each steps from where it was with the gradients at the
    look-ahead: x+ = x - step(grad_x L(x', lambda')), lambda+ = [lambda + dual_lr g(x')]+; two
    gradient evaluations a step) | nupi (Cooper's nuPIOptimizer with its defaults kp = 0, ki = 1,
    nu = 0 and its first step that of SGD: xi_t = nu xi_{t-1} + (1 - nu) g_t, lambda += dual_lr
    (ki g_t + kp (xi_t - xi_{t-1})), so lambda = dual_lr (ki sum g + kp xi_t): an integral and a
    proportional term on the smoothed violation; kp = 0 is gda)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}'; known: {', '.join(VARIANTS)}")
    if not float(dual_lr) > 0:
        raise ValueError("dual_lr must be positive")
    if not -1.0 < float(nu) < 1.0:
        raise ValueError("nu must be in (-1, 1)")
    return Lagrangian(float(dual_lr), variant, float(kp), float(ki), float(nu))
