"""``gradlang.aggregate(name, J, **params)``: a Jacobian-descent aggregator, outside ``.grad`` files.

    >>> import gradlang, jax.numpy as jnp
    >>> gradlang.aggregate("upgrad", jnp.eye(2))        # UPGrad(I₂) = [0.5, 0.5]
    >>> gradlang.aggregate("cagrad", J, c=0.5)

``J`` is the m x n Jacobian (one row per objective); the result is the update direction (n).  The
names and parameters are those of ``gradlang list aggregators`` (TorchJD 0.18's, with its
defaults).  Each (name, parameters) is built and jit-compiled once; jit keeps one compilation per
shape and dtype, so a loop of calls compiles once.  Stochastic aggregators take ``key=`` (without
one, the n-th call uses ``fold_in(key(0), n)``); stateful ones start from their initial state
unless given ``state=``, and then return ``(direction, state)``.
"""

from __future__ import annotations

import inspect
import itertools

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError, GradlangError, choice_help
from .lib.aggregators import AGGREGATORS

_CACHE: dict = {}
_CALLS = itertools.count()


def _freeze(value):
    """A hashable form of a parameter value (arrays and lists become tuples)."""
    if isinstance(value, (list, tuple, np.ndarray, jax.Array)):
        return tuple(np.asarray(value).ravel().tolist()) + (np.shape(value),)
    if callable(value):
        return ("callable", id(value))
    return value


def _check_params(name: str, factory, params: dict) -> None:
    sig = inspect.signature(factory)
    known = list(sig.parameters)
    for p in params:
        if p not in known:
            help_ = choice_help(p, known) if known else f"'{name}' takes no parameters"
            raise ConfigError(f"aggregator '{name}' has no parameter '{p}'", None, help_)
    missing = [p for p, v in sig.parameters.items() if v.default is inspect.Parameter.empty
               and p not in params]
    if missing:
        raise ConfigError(f"aggregator '{name}' needs {', '.join(missing)}", None,
                          f"e.g. gradlang.aggregate('{name}', J, {missing[0]}=...); "
                          f"signature: {name}{sig}")


def _compiled(name: str, params: dict):
    key = (name, tuple(sorted((k, _freeze(v)) for k, v in params.items())))
    if key not in _CACHE:
        factory = AGGREGATORS.get(name).value
        _check_params(name, factory, params)
        try:
            agg = factory(**params)
        except GradlangError:
            raise
        except (TypeError, ValueError) as e:
            raise ConfigError(f"aggregator '{name}': {e}") from None

        def run(J, state, rng):
            aggregate.traces += 1  # a Python side effect: runs once per compilation
            return agg(J, state, rng)

        _CACHE[key] = (agg, jax.jit(run))
    return _CACHE[key]


def aggregate(name: str, J, *, key=None, state=None, **params):
    """The update direction of aggregator ``name`` for the Jacobian ``J`` (m x n)."""
    if not isinstance(name, str) or name not in AGGREGATORS:
        raise ConfigError(f"unknown aggregator '{name}'", None, choice_help(str(name), AGGREGATORS.names()))
    agg, run = _compiled(name, params)
    J = jnp.asarray(J)
    if J.ndim != 2 or J.shape[0] == 0:
        raise ConfigError(f"aggregator '{name}' takes a Jacobian of shape [m, n] (m >= 1), got shape "
                          f"{tuple(J.shape)}", None, "one row per objective: the gradient of that objective")
    if not jnp.issubdtype(J.dtype, jnp.floating):
        J = J.astype(jnp.result_type(float))
    if key is None:
        key = jax.random.fold_in(jax.random.key(0), next(_CALLS)) if agg.stochastic else jax.random.key(0)
    start = agg.init(J.shape[0], J.shape[1], J.dtype) if state is None else state
    d, new_state = run(J, start, key)
    return d if state is None else (d, new_state)


aggregate.traces = 0
