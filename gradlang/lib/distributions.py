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
