"""Sticking the landing (STL): the path derivative of the ELBO, the score term dropped."""

from __future__ import annotations

from dataclasses import dataclass

import jax

from . import ESTIMATORS
from .reparam import Reparam


def stopped(dist):
    """``dist`` with its parameters under ``stop_gradient`` (a NumPyro distribution is a pytree of
    its parameters), so ``dist.log_prob(z)`` is differentiated through ``z`` alone."""
    return jax.tree_util.tree_map(jax.lax.stop_gradient, dist)


@dataclass(frozen=True)
class Stl(Reparam):
    """Draws as reparam does, z = g(eps, phi); the guide's log density of the draw is then
    evaluated with phi stopped, log q_stop(phi)(g(eps, phi)) (``GuideDraws`` does it for every site
    whose estimator has ``stops_params``)."""

    stops_params = True


@ESTIMATORS.register("stl", cite="Roeder, Wu & Duvenaud, Sticking the Landing: Simple, Lower-Variance Gradient "
                                 "Estimators for Variational Inference, NeurIPS 2017")
def stl():
    """Path derivative (Roeder et al. 2017, eq. 8): with z = g(eps, phi),

        grad_phi ELBO = E_eps[ (grad_z log p(x, z) - grad_z log q_phi(z)) grad_phi g(eps, phi) ]
                        - E_q[ grad_phi log q_phi(z) ],

    and the last term (the score) has expectation 0, so dropping it keeps the estimator unbiased;
    at q = p(z | x) the bracket vanishes for every eps, so the estimator's variance is 0 there.
    A guide site ``via stl``, or ``guide = mean_field via stl`` for a Gaussian family."""
    return Stl("stl")
