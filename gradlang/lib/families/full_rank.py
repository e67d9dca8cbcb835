"""Full-covariance Gaussian over all latents jointly (NumPyro's AutoMultivariateNormal)."""

from dataclasses import dataclass

from numpyro.infer.autoguide import AutoMultivariateNormal
from numpyro.infer.initialization import init_to_feasible

from . import FAMILIES


@dataclass(frozen=True)
class FullRank:
    def whole(self, model):
        return AutoMultivariateNormal(model, init_loc_fn=init_to_feasible)


@FAMILIES.register("full_rank", cite="Kucukelbir, Tran, Ranganath, Gelman & Blei, Automatic Differentiation "
                                     "Variational Inference, JMLR 2017")
def full_rank():
    """q(u) = Normal(m, L L^T), L lower-triangular, over the flattened unconstrained latents."""
    return FullRank()
