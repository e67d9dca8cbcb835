"""Mean-field Gaussian: independent normals in the unconstrained space of each latent."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp
import numpyro
import numpyro.distributions as nd
from numpyro.distributions import constraints
from numpyro.distributions.transforms import biject_to
from numpyro.infer.autoguide import AutoNormal
from numpyro.infer.initialization import init_to_feasible

from . import FAMILIES


@dataclass(frozen=True)
class MeanField:
    init_scale: float = 0.1

    def whole(self, model):
        return AutoNormal(model, init_loc_fn=init_to_feasible, init_scale=self.init_scale)

    def site(self, name: str, support, shape: tuple):
        """q(z) = T(Normal(loc, scale)), T = biject_to(support); params ``name.loc``, ``name.scale``."""
        transform = biject_to(support)
        u_shape = transform.inverse_shape(shape)
        loc = numpyro.param(f"{name}.loc", jnp.zeros(u_shape))
        scale = numpyro.param(f"{name}.scale", jnp.full(u_shape, self.init_scale), constraint=constraints.positive)
        base = nd.Normal(loc, scale).to_event(len(u_shape))
        return nd.TransformedDistribution(base, transform) if u_shape != shape or not _identity(support) else base


def _identity(support) -> bool:
    return support is constraints.real or support is constraints.real_vector


@FAMILIES.register("mean_field", cite="Blei, Kucukelbir & McAuliffe, Variational Inference: A Review for "
                                      "Statisticians, JASA 2017; Kucukelbir et al., ADVI, JMLR 2017")
def mean_field(init_scale=0.1):
    """q(z) = prod_i T_i(Normal(m_i, s_i)): a diagonal Gaussian in each latent's unconstrained space."""
    return MeanField(float(init_scale))
