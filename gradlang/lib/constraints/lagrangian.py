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
        return {"multipliers": zeros, "base": list(zeros), "previous": list(zeros), "smoothed": list(zeros)}

    def loss(self, gs, kinds, state):
        return sum(jnp.sum(jax.lax.stop_gradient(m) * g) for g, m in zip(gs, state["multipliers"]))

    def update(self, state, gs, kinds, stationarity=None):
        out = {"multipliers": [], "base": [], "previous": list(gs), "smoothed": []}
        for g, k, m, base, prev, xi in zip(gs, kinds, state["multipliers"], state["base"], state["previous"],
                                           state["smoothed"]):
            if self.variant in ("gda", "extragradient"):  # extragradient: g at the look-ahead point
                new = m + self.dual_lr * g
            elif self.variant == "optimistic":  # ReLOAD: the step extrapolated by the last change
                new = m + self.dual_lr * (2.0 * g - prev)
            else:  # nuPI: an integral of the violation plus a proportional term on its running mean
                xi = self.nu * xi + (1.0 - self.nu) * (g - prev)
                base = base + self.dual_lr * g
                base = jnp.maximum(base, 0.0) if k == "le" else base
                new = base + self.kp * xi
            new = jnp.maximum(new, 0.0) if k == "le" else new
            out["multipliers"].append(new)
            out["base"].append(base)
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
def lagrangian(dual_lr=0.01, variant="gda", kp=1.0, nu=0.0):
    """L = f + sum(lambda g): primal descent on L, dual ascent lambda += dual_lr * g each step,
    projected to lambda >= 0 for inequalities.  variant = gda | optimistic (ReLOAD, both players:
    lambda += dual_lr (2 g_t - g_{t-1}), and the primal steps along 2 grad_x L_t - grad_x L_{t-1}) | extragradient (both players step to a look-ahead point x', lambda' = [lambda + dual_lr
    g(x)]+ with the primal optimizer, then each steps from where it was with the gradients at the
    look-ahead: x+ = x - step(grad_x L(x', lambda')), lambda+ = [lambda + dual_lr g(x')]+; two gradient
    evaluations a step) | nupi (lambda = lambda_I + kp * xi_t, lambda_I += dual_lr g_t, xi an EMA (nu)
    of g's change)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant '{variant}'; known: {', '.join(VARIANTS)}")
    if not float(dual_lr) > 0:
        raise ValueError("dual_lr must be positive")
    return Lagrangian(float(dual_lr), variant, float(kp), float(nu))
