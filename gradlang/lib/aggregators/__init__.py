"""Aggregators of Jacobian descent: one entry a file, registered under its file stem.

Jacobian descent (Quinton & Rey, Jacobian Descent for Multi-Objective Optimization, 2024) steps
along ``A(J)``, ``J`` the m x n Jacobian of a vector objective.  As in TorchJD, most entries are
*weightings*: from the Gramian ``G = J Jᵀ`` (m x m) they compute weights ``w`` (m), and one generic
aggregator returns ``d = wᵀ J`` (``Aggregator.__call__``), which a solver takes as one
vector-Jacobian product.  Parameters and their defaults are TorchJD 0.18's.

An entry is a function of its parameters returning an ``Aggregator``:

* ``stat``: what ``weights`` reads: ``"gramian"`` (G, or the cross-Gramian of two batches for
  modo and sdmgrad), ``"jacobian"`` (J itself: excess_mtl) or ``"direction"`` (graddrop,
  trimmed_mean: coordinate-wise, so ``weights`` returns the direction itself);
* ``init(m, n, dtype) -> state``: a pytree (``()`` when stateless) that the solver carries;
* ``weights(stat, state, key) -> (w, state)``; ``key`` is used by the stochastic ones only;
* ``stochastic``: whether ``weights`` draws from ``key``.

Weights are constants of the step (``stop_gradient``), as TorchJD's are (``no_grad``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp

from ...errors import ConfigError
from ...registry import Registry

AGGREGATORS = Registry("aggregator", "gradlang.lib.aggregators")
STATS = ("gramian", "jacobian", "direction")
JD_CITE = "Quinton & Rey, Jacobian Descent for Multi-Objective Optimization, 2024 (TorchJD)"


def _no_state(m: int, n: int, dtype) -> tuple:
    return ()


GRAM_BLOCK = 32768  # the most columns of J in one block of the Gramian
GRAM_BLOCK_BYTES = 131072  # a block's bytes: m x (columns) entries that stay in the core's cache


def gram_block(m: int, itemsize: int) -> int:
    """Columns of J per block of the Gramian: about ``GRAM_BLOCK_BYTES`` (a power of two between
    256 and ``GRAM_BLOCK`` columns).  The fastest of 64, 128 and 256 KiB on XLA:CPU, float32 (best
    of 300 calls on a loaded machine), against 32768 columns for every m: m = 2, n = 1e5: 72 µs
    (84); m = 8, n = 1e5: 176 µs (213); m = 32, n = 1e5: 1.52 ms (1.75); m = 2, n = 1e6: 0.55 ms
    (0.61)."""
    cols = max(GRAM_BLOCK_BYTES // max(m * itemsize, 1), 256)
    return min(1 << (cols.bit_length() - 1), GRAM_BLOCK)


PAIR_LANES = 64  # two objectives and a very wide J: each entry of G as this many running sums
PAIR_WIDE = 1 << 19  # the fewest columns for which they beat the blocks


def _two_rows_gramian(J):
    """G of a 2 x n J as elementwise products summed down ``PAIR_LANES`` lanes, then across them:
    one pass over J that XLA:CPU vectorises, where its dot of [2, b] x [b, 2] blocks reads J at
    half of PyTorch's speed (2 x 1e6, float32: 0.58 ms in blocks, 0.35-0.41 ms in lanes; PyTorch's
    J Jᵀ 0.29 ms; below ~5e5 columns the blocks are as fast)."""
    n = J.shape[1]
    k, rest = divmod(n, PAIR_LANES)
    X = J[:, :k * PAIR_LANES].reshape(2, k, PAIR_LANES)
    G = jnp.sum(jnp.sum(X[:, None] * X[None, :], axis=2), axis=-1)
    if rest:
        Y = J[:, k * PAIR_LANES:]
        G = G + Y @ Y.T
    return G


def gramian(J, whole: bool = False):
    """G = J Jᵀ (m x m), summed over blocks of ``gram_block(m)`` columns when J is wide (n >= 2
    ``GRAM_BLOCK``): XLA's CPU dot with a long contraction runs far below the machine's speed
    (m = 2, n = 1e6: 19 ms in one dot, 1 ms in blocks), while each block's product stays in cache;
    for two rows and ``PAIR_WIDE`` columns or more, in lanes (``_two_rows_gramian``).

    ``whole``: one dot over all the columns, for an executable compiled without YNNPACK
    (``gradlang.aggregate``'s choice for tall, wide Jacobians): XLA:CPU then runs it as Eigen's
    contraction, which splits the columns over the cores (m = 32, n = 1e6, 2 cores: 11.6 ms
    against 18 ms in blocks; with YNNPACK the one dot takes 75 ms)."""
    m, n = J.shape
    if whole:
        return J @ J.T
    if m == 2 and n >= PAIR_WIDE:
        return _two_rows_gramian(J)
    if n < 2 * GRAM_BLOCK:  # one dot: in blocks, m = 8, n = 2e4 took 52 µs instead of 46
        return J @ J.T
    size = gram_block(m, jnp.dtype(J.dtype).itemsize)
    blocks, rest = divmod(n, size)

    def add(i, G):
        X = jax.lax.dynamic_slice_in_dim(J, i * size, size, 1)
        return G + X @ X.T

    G = jax.lax.fori_loop(0, blocks, add, jnp.zeros((m, m), J.dtype))
    if rest:
        X = J[:, blocks * size:]
        G = G + X @ X.T
    return G


@dataclass(frozen=True, eq=False)
class Aggregator:
    """A built aggregator: its weighting, what it reads, its state and whether it draws."""

    name: str
    fn: Callable[..., Any]  # (stat, state, key) -> (w, state)
    stat: str = "gramian"
    init_fn: Callable[..., Any] = _no_state  # (m, n, dtype) -> state
    stochastic: bool = False
    params: dict = field(default_factory=dict)

    def init(self, m: int, n: int = 0, dtype=jnp.float32):
        return self.init_fn(m, n, dtype)

    def weights(self, stat, state=(), key=None):
        if self.stochastic and key is None:
            raise ConfigError(f"aggregator '{self.name}' draws at random and needs a key")
        return self.fn(stat, state, key)

    def __call__(self, J, state=None, key=None, whole_gramian: bool = False):
        """The update direction ``d`` (n) for the Jacobian ``J`` (m x n), and the new state
        (``whole_gramian``: see ``gramian``'s ``whole``)."""
        return self.with_gramian(J, state, key, whole_gramian)[:2]

    def with_gramian(self, J, state=None, key=None, whole_gramian: bool = False):
        """``(d, state, G)``: ``__call__``'s, and the Gramian ``J Jᵀ`` (the one the weighting read,
        or computed for it where the weighting reads J itself): what a solver keeps for the
        history's conflict report."""
        J = jnp.asarray(J)
        if J.ndim != 2:
            raise ConfigError(f"aggregator '{self.name}' takes a Jacobian of shape [m, n], got {J.shape}")
        if state is None:
            state = self.init(J.shape[0], J.shape[1], J.dtype)
        Jc = jax.lax.stop_gradient(J)
        G = gramian(Jc, whole_gramian)  # unused, so left out by XLA, where the caller drops it
        if self.stat == "direction":
            d, state = self.weights(Jc, state, key)
            return d, state, G
        w, state = self.weights(G if self.stat == "gramian" else Jc, state, key)
        return jax.lax.stop_gradient(w).astype(J.dtype) @ J, state, G

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{self.name}({args})"


def build(name: str, fn, *, stat: str = "gramian", init=_no_state, stochastic: bool = False,
          **params) -> Aggregator:
    assert stat in STATS, stat
    return Aggregator(name, fn, stat, init, stochastic, params)


def require(ok, message: str) -> None:
    """A parameter check: a ConfigError with ``message`` when ``ok`` is false (checked when the
    parameter is a concrete value; a traced one, as in a vmap over parameters, is not checked)."""
    try:
        ok = bool(ok)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerBoolConversionError):
        return
    if not ok:
        raise ConfigError(message)


def vector(name: str, value, param: str):
    """A vector parameter (pref_vector, weights, leak) as an array, None left as it is."""
    if value is None:
        return None
    arr = jnp.asarray(value)
    require(arr.ndim == 1, f"{name}: {param} must be a vector, got shape {tuple(arr.shape)}")
    return arr


def pref_weights(name: str, pref, m: int, dtype, default: str = "mean"):
    """The preference weights: ``pref`` (checked against m), else 1/m (``mean``) or 1 (``sum``)."""
    if pref is None:
        return jnp.full((m,), 1.0 / m if default == "mean" else 1.0, dtype)
    require(pref.shape[0] == m, f"{name}: pref_vector has {pref.shape[0]} entries for {m} objectives")
    return pref.astype(dtype)


def normalize(G, eps: float):
    """G / trace(G), the Gramian of J / ‖J‖_F; zero when trace(G) < eps (TorchJD's normalize)."""
    tr = jnp.trace(G)
    return jnp.where(tr < eps, jnp.zeros_like(G), G / jnp.where(tr < eps, 1.0, tr))


def regularize(G, eps: float):
    """G + eps I (TorchJD's regularize), positive definite for eps > 0."""
    return G + eps * jnp.eye(G.shape[0], dtype=G.dtype)


def project_simplex(y):
    """Euclidean projection of ``y`` onto the probability simplex (sort and threshold, as TorchJD)."""
    m = y.shape[0]
    s = jnp.sort(y)[::-1]
    k = jnp.arange(1, m + 1, dtype=y.dtype)
    tmax = (jnp.cumsum(s) - 1.0) / k  # the threshold if the first k entries stay positive
    hit = jnp.concatenate([tmax[:-1] > s[1:], jnp.array([True])])
    theta = jnp.where(jnp.any(hit[:-1]), tmax[jnp.argmax(hit)], (jnp.sum(y) - 1.0) / m)
    return jnp.maximum(y - theta, 0.0)
