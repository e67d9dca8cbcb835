"""Low-rank plus diagonal Gaussian over all latents jointly (NumPyro's AutoLowRankMultivariateNormal)."""

from dataclasses import dataclass

from numpyro.infer.autoguide import AutoLowRankMultivariateNormal
from numpyro.infer.initialization import init_to_feasible

from . import FAMILIES


@dataclass(frozen=True)
class LowRank:
    rank: int

    def whole(self, model):
        return AutoLowRankMultivariateNormal(model, rank=self.rank, init_loc_fn=init_to_feasible)


@FAMILIES.register("low_rank", cite="Ong, Nott & Smith, Gaussian Variational Approximation With a Factor "
                                    "Covariance Structure, JCGS 2018")
def low_rank(rank=5):
    """q(u) = Normal(m, W W^T + diag(d)), W of shape [n, rank], over the flattened unconstrained latents."""
    return LowRank(int(rank))
