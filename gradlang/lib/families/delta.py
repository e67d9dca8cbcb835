"""A point mass: maximum a posteriori (NumPyro's AutoDelta)."""

from dataclasses import dataclass

from numpyro.infer.autoguide import AutoDelta
from numpyro.infer.initialization import init_to_feasible

from . import FAMILIES


@dataclass(frozen=True)
class Delta:
    def whole(self, model):
        return AutoDelta(model, init_loc_fn=init_to_feasible)


@FAMILIES.register("delta", cite="MAP estimation as variational inference with a Dirac family; "
                                 "Bingham et al., Pyro, JMLR 2019 (AutoDelta)")
def delta():
    """q(z) = Dirac(z*): the ELBO becomes log p(x, z*), so fitting finds the posterior mode."""
    return Delta()
