"""NumPyro's distributions by snake_case name (``half_normal`` -> ``HalfNormal``).

Every distribution NumPyro exports is reachable; a few short aliases follow common usage
(``mvnormal``, ``lognormal``).  Wrappers that take other distributions rather than arrays
(``Independent``, ``Masked``, ``Transformed``, ...) are left out.
"""

from __future__ import annotations

import re

import numpyro.distributions as nd

_NOT_ARRAY_PARAMETERISED = {
    "Distribution", "ExpandedDistribution", "FoldedDistribution", "Independent", "MaskedDistribution",
    "TransformedDistribution", "LeftTruncatedDistribution", "RightTruncatedDistribution",
    "TwoSidedTruncatedDistribution", "TruncatedDistribution", "LeftCensoredDistribution",
    "RightCensoredDistribution", "IntervalCensoredDistribution", "Mixture", "MixtureGeneral",
    "MixtureSameFamily", "HurdleDistribution", "ZeroInflatedDistribution", "Unit", "EulerMaruyama",
    "SineSkewed", "ImproperUniform",
}


def _snake(name: str) -> str:
    name = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name)
    name = re.sub(r"(?<=[A-Z])([A-Z][a-z])", r"_\1", name)
    return name.lower()


DISTRIBUTIONS: dict[str, object] = {
    _snake(n): getattr(nd, n) for n in nd.__all__
    if n[0].isupper() and n not in _NOT_ARRAY_PARAMETERISED
}
DISTRIBUTIONS.update({
    "mvnormal": nd.MultivariateNormal,
    "lognormal": nd.LogNormal,
    "lkj_cholesky": nd.LKJCholesky,
    "lkj": nd.LKJ,
    "car": nd.CAR,
})


class Flat(nd.ImproperUniform):
    """``flat()``: the improper uniform density (log density 0) on the real line, Stan's prior for
    a parameter declared without one.  A typed latent narrows it to its domain (``sigma: positive
    ~ flat()`` is flat on (0, inf)); its declared shape gives its size.  It is drawn only to
    initialise, uniformly on (-2, 2) as Stan initialises."""

    def __init__(self, *, validate_args=None):
        super().__init__(nd.constraints.real, (), (), validate_args=validate_args)

    def sample(self, key, sample_shape=()):
        import jax

        return jax.random.uniform(key, tuple(sample_shape) + self.batch_shape + self.event_shape,
                                  minval=-2.0, maxval=2.0)


DISTRIBUTIONS["flat"] = Flat
