"""The gallery's ports of posteriordb models, written by hand in NumPyro from their Stan programs
(posteriordb's ``posterior_database/models/stan/*.stan``): the independent side of
tests/test_posteriordb.py (log joint against the .grad port) and the models that
tests/fixtures/make_posteriordb_nuts.py samples with NUTS for the reference posteriors.

Each model's sample sites are the .grad port's latents, by the same names and shapes, in the
constrained space.  A constrained parameter with a prior on a wider support
(``real<lower=0> sigma; sigma ~ normal(0, 2)``) is an improper uniform on its constraint plus the
prior's log density as a factor, Stan's own reading (its truncation normaliser is a constant, added
here where gradlang's domain narrowing adds it); a parameter without a prior is flat."""

from __future__ import annotations

from pathlib import Path

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
from numpyro.distributions import constraints as C

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LOG_HALF = float(np.log(0.5))


def _flat(name: str, support=C.real, shape=()):
    return numpyro.sample(name, nd.ImproperUniform(support, (), tuple(shape)))


def load_data(path: str, dtype=jnp.float32) -> dict:
    """An example's data file (examples/data/<path>), every array cast to ``dtype``."""
    with np.load(EXAMPLES / "data" / path) as f:
        return {k: jnp.asarray(f[k], dtype) for k in f.files}


def ark(d):
    y, K = d["y"], 5
    alpha = numpyro.sample("alpha", nd.Normal(0, 10))
    beta = numpyro.sample("beta", nd.Normal(0, 10).expand([K]).to_event(1))
    sigma = _flat("sigma", C.positive)
    numpyro.factor("sigma_prior", nd.Cauchy(0, 2.5).log_prob(sigma) - LOG_HALF)
    T = y.shape[0]
    mu = alpha + sum(beta[k] * y[K - 1 - k: T - 1 - k] for k in range(K))   # mu[t] = alpha + sum_k beta[k] y[t-k]
    numpyro.factor("y", nd.Normal(mu, sigma).log_prob(y[K:]).sum())


def diamonds(d):
    X, Y = d["X"], d["Y"]
    Xc = X[:, 1:] - X[:, 1:].mean(0)
    b = numpyro.sample("b", nd.Normal(0, 1).expand([X.shape[1] - 1]).to_event(1))
    intercept = numpyro.sample("Intercept", nd.StudentT(3, 8, 10))
    sigma = _flat("sigma", C.positive)
    # student_t_lpdf(sigma | 3, 0, 10) - student_t_lccdf(0 | 3, 0, 10)
    numpyro.factor("sigma_prior", nd.StudentT(3, 0, 10).log_prob(sigma) - LOG_HALF)
    numpyro.factor("Y", nd.Normal(intercept + Xc @ b, sigma).log_prob(Y).sum())


def gp_pois_regr(d):
    x, k = d["x"], d["k"]
    rho = numpyro.sample("rho", nd.Gamma(25, 4))
    alpha = _flat("alpha", C.positive)
    numpyro.factor("alpha_prior", nd.Normal(0, 2).log_prob(alpha) - LOG_HALF)
    f_tilde = numpyro.sample("f_tilde", nd.Normal(0, 1).expand([x.shape[0]]).to_event(1))
    cov = alpha**2 * jnp.exp(-0.5 * (x[:, None] - x[None, :]) ** 2 / rho**2) + 1e-6 * jnp.eye(x.shape[0])
    f = jnp.linalg.cholesky(cov) @ f_tilde
    numpyro.factor("k", nd.Poisson(jnp.exp(f)).log_prob(k).sum())


def low_dim_gauss_mix(d):
    y = d["y"]
    mu = _flat("mu", C.ordered_vector, (2,))
    sigma = _flat("sigma", C.positive, (2,))
    theta = numpyro.sample("theta", nd.Beta(5, 5))
    numpyro.factor("priors", nd.Normal(0, 2).log_prob(sigma).sum() - 2 * LOG_HALF + nd.Normal(0, 2).log_prob(mu).sum())
    lp = jnp.logaddexp(jnp.log(theta) + nd.Normal(mu[0], sigma[0]).log_prob(y),
                       jnp.log1p(-theta) + nd.Normal(mu[1], sigma[1]).log_prob(y))   # log_mix
    numpyro.factor("y", lp.sum())


def blr(d):
    X, y = d["X"], d["y"]
    beta = numpyro.sample("beta", nd.Normal(0, 10).expand([X.shape[1]]).to_event(1))
    sigma = _flat("sigma", C.positive)
    numpyro.factor("sigma_prior", nd.Normal(0, 10).log_prob(sigma) - LOG_HALF)
    numpyro.factor("y", nd.Normal(X @ beta, sigma).log_prob(y).sum())


def nes(d):
    beta = _flat("beta", C.real, (9,))
    sigma = _flat("sigma", C.positive)
    age = d["age_discrete"]
    mu = (beta[0] + beta[1] * d["real_ideo"] + beta[2] * d["race_adj"] + beta[3] * (age == 2)
          + beta[4] * (age == 3) + beta[5] * (age == 4) + beta[6] * d["educ1"] + beta[7] * d["gender"]
          + beta[8] * d["income"])
    numpyro.factor("partyid7", nd.Normal(mu, sigma).log_prob(d["partyid7"]).sum())


def logearn_height_male(d):
    beta = _flat("beta", C.real, (3,))
    sigma = _flat("sigma", C.positive)
    mu = beta[0] + beta[1] * d["height"] + beta[2] * d["male"]
    numpyro.factor("log_earn", nd.Normal(mu, sigma).log_prob(jnp.log(d["earn"])).sum())


def kidscore_momiq(d):
    beta = _flat("beta", C.real, (2,))
    sigma = _flat("sigma", C.positive)
    numpyro.factor("sigma_prior", nd.Cauchy(0, 2.5).log_prob(sigma) - LOG_HALF)
    mu = beta[0] + beta[1] * d["mom_iq"]
    numpyro.factor("kid_score", nd.Normal(mu, sigma).log_prob(d["kid_score"]).sum())


def kidscore_momhsiq(d):
    beta = _flat("beta", C.real, (3,))
    sigma = _flat("sigma", C.positive)
    numpyro.factor("sigma_prior", nd.Cauchy(0, 2.5).log_prob(sigma) - LOG_HALF)
    mu = beta[0] + beta[1] * d["mom_hs"] + beta[2] * d["mom_iq"]
    numpyro.factor("kid_score", nd.Normal(mu, sigma).log_prob(d["kid_score"]).sum())


def logmesquite(d):
    beta = _flat("beta", C.real, (7,))
    sigma = _flat("sigma", C.positive)
    mu = (beta[0] + beta[1] * jnp.log(d["diam1"]) + beta[2] * jnp.log(d["diam2"])
          + beta[3] * jnp.log(d["canopy_height"]) + beta[4] * jnp.log(d["total_height"])
          + beta[5] * jnp.log(d["density"]) + beta[6] * d["group"])
    numpyro.factor("log_weight", nd.Normal(mu, sigma).log_prob(jnp.log(d["weight"])).sum())


PORTS = {  # example -> (posteriordb posterior it ports, data file, hand-written model)
    "arK": ("arK-arK", "arK.npz", ark),
    "diamonds": ("diamonds-diamonds", "diamonds.npz", diamonds),
    "gp_pois_regr": ("gp_pois_regr-gp_pois_regr", "gp_pois_regr.npz", gp_pois_regr),
    "low_dim_gauss_mix": ("low_dim_gauss_mix-low_dim_gauss_mix", "low_dim_gauss_mix.npz", low_dim_gauss_mix),
    "blr": ("sblrc-blr", "sblrc.npz", blr),
    "nes1972": ("nes1972-nes", "nes1972.npz", nes),
    "logearn_height_male": ("earnings-logearn_height_male", "earnings.npz", logearn_height_male),
    "kidiq": ("kidiq-kidscore_momiq", "kidiq.npz", kidscore_momiq),
    "kidiq_momhsiq": ("kidiq-kidscore_momhsiq", "kidiq.npz", kidscore_momhsiq),
    "logmesquite": ("mesquite-logmesquite", "mesquite.npz", logmesquite),
}


NUTS_FIXTURE = ROOT / "tests" / "fixtures" / "posteriordb_nuts.json"


def reference_posteriors(path: Path = NUTS_FIXTURE) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The NUTS reference posteriors (tests/fixtures/make_posteriordb_nuts.py made them):
    ``{example name: {latent: (mean, sd)}}``, arrays of the latent's declared shape (0-d for a
    scalar), in its constrained space."""
    import json

    models = json.loads(Path(path).read_text())["models"]
    return {name: {site: (np.asarray(p["mean"]), np.asarray(p["sd"])) for site, p in entry["params"].items()}
            for name, entry in models.items()}


def posterior_gaps(post: dict | None, ref: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[float, float]:
    """How far a fitted posterior ``{latent: (mean, sd)}`` is from a reference one (as
    ``reference_posteriors()[model]``): the largest over the scalars of |mean - ref mean| / ref sd,
    and of |sd / ref sd - 1| (issue 14's bar: 0.3 and 0.3); ``(inf, inf)`` for ``post=None`` (a
    diverged fit)."""
    if post is None:
        return float("inf"), float("inf")
    mean_gap = max(float(np.max(np.abs(np.asarray(post[k][0]) - m) / s)) for k, (m, s) in ref.items())
    sd_gap = max(float(np.max(np.abs(np.asarray(post[k][1]) / s - 1))) for k, (m, s) in ref.items())
    return mean_gap, sd_gap
