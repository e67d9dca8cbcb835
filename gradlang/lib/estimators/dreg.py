"""Doubly reparameterised gradients (DReG) for the importance-weighted bound (iwae)."""

from __future__ import annotations

from dataclasses import dataclass

from . import ESTIMATORS
from .stl import Stl


@dataclass(frozen=True)
class Dreg(Stl):
    """Draws as stl does (the guide's log density with its parameters stopped); an iwae block
    whose guide is drawn ``via dreg`` weighs the path gradients by the squared normalised weights
    (``VI.expect``).  Under elbo (a plain mean over particles) it is stl."""


@ESTIMATORS.register("dreg", cite="Tucker, Lawson, Gu & Maddison, Doubly Reparameterized Gradient Estimators "
                                  "for Monte Carlo Objectives, ICLR 2019")
def dreg():
    """DReG for iwae(K) (Tucker et al. 2019, eq. 7): with log weights w_k = log p(x, z_k) - log q_phi(z_k),
    z_k = g(eps_k, phi) and normalised weights w~_k = exp(w_k) / sum_j exp(w_j),

        grad_phi IWAE = E[ sum_k w~_k^2 (d w_k / d z_k) grad_phi g(eps_k, phi) ],

    the score terms of the plain reparameterised gradient replaced, exactly in expectation, by a
    second path term; model parameters theta keep the usual sum_k w~_k grad_theta w_k.  Needs a
    reparameterisable guide drawn wholly ``via dreg``."""
    return Dreg("dreg")
