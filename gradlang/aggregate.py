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

A call costs little besides the jitted computation: an aggregator called without parameters is
found in one dict lookup, and a stateless, deterministic one is a jitted function of J alone (no
key or state is made per call, J's shape and dtype checked when it traces), so small Jacobians
are not dominated by Python.  What remains at small sizes is XLA:CPU's: a computation of 1000
flops or more is handed to another thread (``jax_cpu_enable_async_dispatch``), about 5 µs a
call (mean of 8 x 1e4: 13 µs; 6 µs with that flag off).
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
_PLAIN: dict = {}  # name -> (aggregator, jitted J -> d) for calls without parameters, key or state
_CALLS = itertools.count()
_FLOATS = frozenset(map(jnp.dtype, (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)))


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


def _plain(name: str):
    """The aggregator ``name`` with its defaults and, when it keeps no state and draws nothing, a
    jitted function of J alone: the fast path of ``aggregate``.  J's checks run when it traces
    (J's shape and dtype are static, so once per shape), not at every call."""
    if name not in _PLAIN:
        agg = _compiled(name, {})[0]
        if agg.stochastic or agg.init(1, 1) != ():
            _PLAIN[name] = (agg, None)
        else:
            def direction(J):
                aggregate.traces += 1
                return agg(_jacobian(name, J), (), None)[0]

            _PLAIN[name] = (agg, jax.jit(direction))
    return _PLAIN[name]


def _jacobian(name: str, J):
    """J as a floating array of shape [m, n], m >= 1 (a ConfigError otherwise)."""
    if not isinstance(J, jax.Array):
        J = jnp.asarray(J)
    if J.ndim != 2 or J.shape[0] == 0:
        raise ConfigError(f"aggregator '{name}' takes a Jacobian of shape [m, n] (m >= 1), got shape "
                          f"{tuple(J.shape)}", None, "one row per objective: the gradient of that objective")
    if J.dtype not in _FLOATS:
        J = J.astype(jnp.result_type(float))
    return J


def aggregate(name: str, J, *, key=None, state=None, **params):
    """The update direction of aggregator ``name`` for the Jacobian ``J`` (m x n)."""
    plain = _PLAIN.get(name) if type(name) is str and not (params or key is not None or state is not None) else None
    if plain is not None and plain[1] is not None:  # the common call: one lookup, one jitted call
        return plain[1](J if isinstance(J, (jax.Array, np.ndarray)) else jnp.asarray(J))
    if not isinstance(name, str) or name not in AGGREGATORS:
        raise ConfigError(f"unknown aggregator '{name}'", None, choice_help(str(name), AGGREGATORS.names()))
    if not params and key is None and state is None and _plain(name)[1] is not None:
        return aggregate(name, J)
    agg, run = _compiled(name, params)
    J = _jacobian(name, J)
    if key is None:
        key = jax.random.fold_in(jax.random.key(0), next(_CALLS)) if agg.stochastic else None
    start = agg.init(J.shape[0], J.shape[1], J.dtype) if state is None else state
    d, new_state = run(J, start, key)
    return d if state is None else (d, new_state)


aggregate.traces = 0
