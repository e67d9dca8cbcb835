"""The reparameterisation (pathwise) estimator."""

from __future__ import annotations

from dataclasses import dataclass

from . import ESTIMATORS, Estimator


@dataclass(frozen=True)
class Reparam(Estimator):
    def check(self, dist) -> str | None:
        if not dist.has_rsample:
            kind = "discrete" if getattr(dist.support, "is_discrete", False) else "not reparameterisable"
            return f"reparam needs a reparameterisable distribution, and {type(dist).__name__} is {kind}"
        return None

    def draw(self, dist, key):
        return dist.rsample(key), None


@ESTIMATORS.register("reparam", cite="Kingma & Welling, Auto-Encoding Variational Bayes, ICLR 2014; "
                                     "Rezende, Mohamed & Wierstra, Stochastic Backpropagation, ICML 2014")
def reparam():
    """Pathwise gradient: z = g(eps, phi) with eps ~ p(eps), so grad E[f(z)] = E[grad_phi f(g(eps, phi))]."""
    return Reparam("reparam")
