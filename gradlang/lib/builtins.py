"""Built-in functions and operators, by NumPy's names and meanings (``jax.numpy``/``jax.nn``).

Shapes are never written down here: the checker infers them by evaluating these very functions
abstractly, so a built-in's shape rule is NumPy's own.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .small_sums import mean, sum_, total


def sumsq(x):
    """sum(x^2): the squared Euclidean norm."""
    return total(jnp.square(x))


def norm1(x):
    """sum(|x|): the l1 norm of all entries."""
    return total(jnp.abs(x))


def norm2(x):
    """sqrt(sum(x^2)): the Euclidean norm of all entries."""
    return jnp.sqrt(total(jnp.square(x)))


def log_prob(dist, x):
    """The log density of a distribution expression at x, summed over the batch of sites."""
    return jnp.sum(dist.log_prob(x))


def mixture(weights, components):
    """A finite mixture, p(x) = sum_k weights[k] p_k(x): ``components`` is a list of distributions
    (NumPyro's MixtureGeneral) or one distribution whose last batch dim indexes the components,
    ``normal(mu, sigma)`` with vectors mu and sigma (NumPyro's MixtureSameFamily)."""
    import numpyro.distributions as nd

    mixing = nd.Categorical(probs=weights)
    if isinstance(components, nd.Distribution):
        if not components.batch_shape:
            raise ValueError("one distribution as the components of a mixture needs a batch dim: its last "
                             "indexes the components (normal(mu, sigma) with vectors mu, sigma)")
        return nd.MixtureSameFamily(mixing, components)
    if not components or not all(isinstance(c, nd.Distribution) for c in components):
        raise ValueError("the components of a mixture are a list of distributions, or one batched distribution")
    return nd.MixtureGeneral(mixing, list(components))


OPERATORS = {
    "+": "add", "-": "subtract", "*": "multiply", "/": "divide", "//": "floor_divide", "@": "matmul", "^": "power",
    "==": "equal", "!=": "not_equal", "<": "less", "<=": "less_equal", ">": "greater",
    ">=": "greater_equal", "and": "logical_and", "or": "logical_or",
}
UNARY = {"-": "negative", "not": "logical_not"}

_NUMPY = """
    abs absolute sign exp exp2 expm1 log log2 log10 log1p sqrt cbrt square reciprocal sin cos tan
    arcsin arccos arctan arctan2 sinh cosh tanh arcsinh arccosh arctanh floor ceil round trunc clip
    maximum minimum where isfinite isnan logaddexp hypot power mod fmod floor_divide
    add subtract multiply divide matmul negative equal not_equal less less_equal greater greater_equal
    logical_and logical_or logical_not
    sum mean var std max min prod median argmax argmin cumsum cumprod all any
    dot vdot inner outer kron einsum tensordot cross
    stack concatenate hstack vstack reshape ravel transpose swapaxes moveaxis expand_dims squeeze
    diag diagonal tril triu eye zeros ones full zeros_like ones_like full_like arange linspace
    trace sort argsort flip roll take tile repeat broadcast_to
""".split()
_LINALG = "cholesky solve inv det slogdet norm eigh svd qr pinv matrix_power".split()
_NN = "relu relu6 softplus sigmoid softmax log_softmax log_sigmoid gelu silu swish elu selu leaky_relu celu glu hard_tanh one_hot".split()
_SCIPY = {"logsumexp": jax.scipy.special.logsumexp, "gammaln": jax.scipy.special.gammaln,
          "digamma": jax.scipy.special.digamma, "erf": jax.scipy.special.erf,
          "logit": jax.scipy.special.logit, "expit": jax.scipy.special.expit,
          "xlogy": jax.scipy.special.xlogy, "betaln": jax.scipy.special.betaln}

FUNCTIONS: dict[str, object] = {}
FUNCTIONS.update({n: getattr(jnp, n) for n in _NUMPY})
FUNCTIONS.update({n: getattr(jnp.linalg, n) for n in _LINALG if n not in FUNCTIONS})
FUNCTIONS.update({n: getattr(jax.nn, n) for n in _NN})
FUNCTIONS.update(_SCIPY)
FUNCTIONS.update({"sum": sum_, "mean": mean})  # small arrays' sums fused into their consumers (small_sums)
FUNCTIONS.update({"sumsq": sumsq, "norm1": norm1, "norm2": norm2, "log_prob": log_prob,
                  "mixture": mixture, "det": jnp.linalg.det, "inv": jnp.linalg.inv,
                  "solve": jnp.linalg.solve})

# Functions with an argument that is a sequence (its position): an array literal there stays a
# list of values (arrays, or the distributions of a mixture).
SEQUENCE_ARG = {"stack": 0, "concatenate": 0, "hstack": 0, "vstack": 0, "mixture": 1}

# Arguments that must be static Python values (shapes, axes, sizes).
STATIC_ARGS = {
    "reshape": (1,), "eye": (0, 1), "zeros": (0,), "ones": (0,), "full": (0,), "arange": (0, 1, 2),
    "linspace": (2,), "tile": (1,), "repeat": (1,), "broadcast_to": (1,), "expand_dims": (1,),
    "one_hot": (1,), "swapaxes": (1, 2), "moveaxis": (1, 2), "roll": (1,), "matrix_power": (1,),
}
STATIC_KWARGS = {"axis", "axes", "keepdims", "shape", "num_classes", "k", "ord", "ddof", "num"}

CONSTANTS = {"pi": float(np.pi), "e": float(np.e), "inf": float("inf"), "nan": float("nan"),
             "true": True, "false": False, "None": None}


def _prox_function(name: str):
    """The value of a prox entry as a built-in function of ``(x, *its arguments)``: ``tv1d(x)``,
    ``elastic_net(x, l1, l2)``, ``group_norm(x, groups)``; an indicator's value is 0 (its set is
    met by its prox, or counted by ``subject to``).  Under a proximal method split_prox takes such a
    term by its prox; elsewhere it is an ordinary (non-smooth) term."""
    def value(x, *args):
        from .prox import PROXES

        return PROXES.get(name).value(*args).value(x)

    value.__doc__ = f"{name}(x, ...): the function whose prox `gradlang list proxes` lists"
    return value


_PROX_FUNCTIONS = ("elastic_net", "group_norm", "nuclear", "tv1d", "linf", "k_sparse", "nonneg", "box",
                   "simplex", "l1_ball", "l2_ball", "linf_ball", "hyperplane", "halfspace", "affine")
FUNCTIONS.update({n: _prox_function(n) for n in _PROX_FUNCTIONS})
