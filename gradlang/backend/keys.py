"""A run's random keys, made on the host: JAX's own keys, bit for bit, without an executable.

gradlang keys are JAX's default raw keys (``uint32[2]``, the Threefry-2x32 generator) and a run
derives them as JAX would: ``PRNGKey(seed)``, its ``split`` into the loop's and the init's key,
and step t's key ``fold_in(loop key, t)``.  Made by ``jax.random``, each of these is an XLA
executable that a fresh process compiles before the run can start, 50-100 ms of CPU apiece for
a vectorised Threefry on XLA:CPU: a visible share of a short fit (a lasso that converges in 56
steps, a VI fit under its defaults).  Here they are computed in NumPy instead, from the
definitions in ``jax/_src/random/threefry2x32.py``:

* ``PRNGKey(s) = (s >> 32, s & 0xFFFFFFFF)``: ``(0, s mod 2**32)`` for a 32-bit seed;
* ``fold_in(k, d) = threefry2x32(k; (0, d))``, the hash of the count pair ``(0, d)``;
* ``split(k, n)[i] = threefry2x32(k; (0, i))`` with the default ``jax_threefry_partitionable``
  (the "fold-like" split), i.e. ``fold_in(k, i)``;

with Threefry-2x32 the 20-round hash of Salmon, Moraes, Dror & Shaw, "Parallel random numbers:
as easy as 1, 2, 3" (SC 2011), as JAX applies it: rotations (13, 15, 26, 6) and (17, 29, 16, 24)
in turn, the key schedule ``(k0, k1, k0 ^ k1 ^ 0x1BD11BDA)`` injected after every four rounds
with the injection count added to the second word.  ``tests/test_keys.py`` checks every function
against ``jax.random`` bit for bit.  Where JAX is configured otherwise (another default PRNG,
the original split) the functions defer to ``jax.random``.
"""

from __future__ import annotations

import jax
import numpy as np

_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))
_PARITY = np.uint32(0x1BD11BDA)


def threefry2x32(key: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Threefry-2x32 hash (20 rounds) of the count pairs ``(x0, x1)`` (uint32 arrays of one
    shape) under ``key`` (uint32[2])."""
    k0, k1 = np.uint32(key[0]), np.uint32(key[1])
    schedule = (k0, k1, k0 ^ k1 ^ _PARITY)
    x0 = np.asarray(x0, np.uint32) + schedule[0]
    x1 = np.asarray(x1, np.uint32) + schedule[1]
    for block in range(5):
        for r in _ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = ((x1 << np.uint32(r)) | (x1 >> np.uint32(32 - r))) ^ x0
        x0 = x0 + schedule[(block + 1) % 3]
        x1 = x1 + schedule[(block + 2) % 3] + np.uint32(block + 1)
    return x0, x1


def _native() -> bool:
    """Whether JAX makes its keys as this module does: the Threefry default with the fold-like
    split (JAX's defaults since 0.5)."""
    return (jax.config.jax_default_prng_impl == "threefry2x32" and bool(jax.config.jax_threefry_partitionable)
            and not jax.config.jax_enable_custom_prng)


def _fits_int32(seed: int) -> bool:
    return -2**31 <= seed < 2**31


def prng_key(seed: int) -> np.ndarray:
    """``jax.random.PRNGKey(seed)`` as a NumPy uint32[2] array."""
    if not (_native() and _fits_int32(seed)):  # a wider seed: PRNGKey's own handling
        return np.asarray(jax.random.PRNGKey(seed))
    return np.array([0, seed & 0xFFFFFFFF], np.uint32)


def folds(key, start: int, n: int) -> np.ndarray:
    """``[fold_in(key, start + i) for i in range(n)]`` as one uint32[n, 2] array."""
    key = np.asarray(key, np.uint32)
    counts = (np.uint32(start) + np.arange(n, dtype=np.uint32)).astype(np.uint32)
    if not _native():
        return np.asarray(jax.vmap(lambda t: jax.random.fold_in(key, t))(counts))
    with np.errstate(over="ignore"):  # uint32 arithmetic wraps, as the hash intends
        b0, b1 = threefry2x32(key, np.zeros(n, np.uint32), counts)
    return np.stack([b0, b1], axis=1)


def split(key, n: int = 2) -> np.ndarray:
    """``jax.random.split(key, n)`` as a NumPy uint32[n, 2] array."""
    if not _native():
        return np.asarray(jax.random.split(np.asarray(key, np.uint32), n))
    return folds(key, 0, n)  # the fold-like split: key i is fold_in(key, i)


def run_keys(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(loop key, init key)`` of a run: the split of ``PRNGKey(seed)``, made on the host."""
    loop_key, init_key = split(prng_key(seed))
    return loop_key, init_key
