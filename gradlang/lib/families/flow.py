"""A normalising flow: inverse autoregressive flow layers on a diagonal Gaussian (NumPyro's AutoIAFNormal)."""

from dataclasses import dataclass

from numpyro.infer.autoguide import AutoIAFNormal
from numpyro.infer.initialization import init_to_feasible

from . import FAMILIES


@dataclass(frozen=True)
class Flow:
    layers: int

    def whole(self, model):
        return AutoIAFNormal(model, num_flows=self.layers, init_loc_fn=init_to_feasible)


@FAMILIES.register("flow", cite="Kingma, Salimans, Jozefowicz, Chen, Sutskever & Welling, Improved Variational "
                                "Inference with Inverse Autoregressive Flow, NeurIPS 2016")
def flow(layers=2):
    """q(u) = (T_L o ... o T_1)(Normal(0, I)), each T_l an inverse autoregressive flow (MADE network)."""
    return Flow(int(layers))
