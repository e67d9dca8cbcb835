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
are not dominated by Python.

A call on a Jacobian that is already computed returns a direction that is computed too, when
that takes at most ``SPIN_FOR`` (``_ready``).  XLA:CPU runs a computation of 1000 flops or more
on its own thread (``jax_cpu_enable_async_dispatch``).  A caller that then waits for the result
sleeps on a futex, and waking it takes longer than a short aggregation itself: on a 2-core VM,
the mean of 2 x 1e5 took 20 µs a call, 13 µs when the calling thread polled for the result
instead, and the mean of 32 x 1e4 22 µs against 15 (the computation alone: 9 and 11 µs).  A
Jacobian still being computed (a caller that dispatches ahead) is not waited for.

A Jacobian with many rows and many entries (``_whole``) gets its Gramian in one dot, in an
executable compiled without YNNPACK, so that XLA:CPU runs the dot through Eigen, which splits it
over the cores; the blocks that ``gramian`` uses elsewhere run on one core.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from .errors import ConfigError, GradlangError, choice_help
from .lib.aggregators import AGGREGATORS

_CACHE: dict = {}
_PLAIN: dict = {}  # name -> (aggregator, jitted J -> d) for calls without parameters, key or state
_CALLS = itertools.count()
_FLOATS = frozenset(map(jnp.dtype, (jnp.float16, jnp.bfloat16, jnp.float32, jnp.float64)))
WHOLE_GRAMIAN_ROWS = 16  # see _whole
WHOLE_GRAMIAN_ENTRIES = 1 << 21
WHOLE_GRAMIAN_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}  # no YNNPACK fusions: Eigen's dot
_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
SPIN_FOR = 2e-4  # seconds: the longest a call polls for its direction (a wake-up costs ~10 µs)
_yield = getattr(os, "sched_yield", lambda: None)


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

        def run(J, state, rng, whole=False):
            aggregate.traces += 1  # a Python side effect: runs once per compilation
            return agg(J, state, rng, whole)

        _CACHE[key] = (agg, _both(run))
    return _CACHE[key]


def _both(fn):
    """``fn`` jitted as it is and, for the Jacobians that ``_whole`` picks, with its Gramian in one
    dot and compiled without YNNPACK (``WHOLE_GRAMIAN_OPTIONS``)."""
    return jax.jit(fn), jax.jit(functools.partial(fn, whole=True), compiler_options=WHOLE_GRAMIAN_OPTIONS)


def _whole(agg, shape) -> bool:
    """Whether the Gramian of a Jacobian of this shape is one Eigen dot (``gramian``'s ``whole``):
    for a Gramian weighting, on two cores or more, m >= ``WHOLE_GRAMIAN_ROWS`` and m n >=
    ``WHOLE_GRAMIAN_ENTRIES``.  UPGrad on 2 cores, float32, best of 15 calls, blocks with
    YNNPACK against one Eigen dot: m = 32, n = 1e6: 21.7 ms / 14.6; 32 x 1e5: 1.67 / 1.30;
    24 x 1e5: 1.16 / 0.94; 16 x 1e6: 8.5 / 5.8; 32 x 66000: 1.16 / 0.85; but 8 x 1e6: 3.25 / 3.68
    and 8 x 1e5: 0.23 / 0.40 (a short dot is not worth a second thread).  On one core, Eigen's
    dot (23.5 ms of CPU at 32 x 1e6) is slower than the blocks (18 ms)."""
    return (agg.stat == "gramian" and _CORES >= 2 and len(shape) == 2 and shape[0] >= WHOLE_GRAMIAN_ROWS
            and shape[0] * shape[1] >= WHOLE_GRAMIAN_ENTRIES)


def _plain(name: str):
    """The aggregator ``name`` with its defaults and, when it keeps no state and draws nothing, a
    jitted function of J alone: the fast path of ``aggregate``.  J's checks run when it traces
    (J's shape and dtype are static, so once per shape), not at every call."""
    if name not in _PLAIN:
        agg = _compiled(name, {})[0]
        if agg.stochastic or agg.init(1, 1) != ():
            _PLAIN[name] = (agg, None)
        else:
            def direction(J, whole=False):
                aggregate.traces += 1
                return agg(_jacobian(name, J), (), None, whole)[0]

            _PLAIN[name] = (agg, _both(direction))
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
        if not isinstance(J, (jax.Array, np.ndarray)):
            J = jnp.asarray(J)
        d = plain[1][_whole(plain[0], J.shape)](J)
        return _ready(d) if _computed(J) else d
    if not isinstance(name, str) or name not in AGGREGATORS:
        raise ConfigError(f"unknown aggregator '{name}'", None, choice_help(str(name), AGGREGATORS.names()))
    if not params and key is None and state is None and _plain(name)[1] is not None:
        return aggregate(name, J)
    agg, run = _compiled(name, params)
    J = _jacobian(name, J)
    if key is None:
        key = jax.random.fold_in(jax.random.key(0), next(_CALLS)) if agg.stochastic else None
    start = agg.init(J.shape[0], J.shape[1], J.dtype) if state is None else state
    d, new_state = run[_whole(agg, J.shape)](J, start, key)
    if _computed(J):
        _ready(d)  # the state comes out of the same computation
    return d if state is None else (d, new_state)


def _computed(J) -> bool:
    """Whether J's values are computed: a NumPy array's are; a tracer's, or a pending array's, not."""
    if isinstance(J, jax.core.Tracer):
        return False
    return not isinstance(J, jax.Array) or J.is_ready()


def _ready(d):
    """``d``, after polling it until it is computed, for at most ``SPIN_FOR`` seconds.  Between
    polls the thread yields its core, so that XLA's threads (which may want every core) run."""
    deadline = time.perf_counter() + SPIN_FOR
    while not d.is_ready() and time.perf_counter() < deadline:
        _yield()
    return d


aggregate.traces = 0
