"""The host-made keys (``backend/keys.py``) are JAX's, bit for bit: ``PRNGKey``, ``split`` and
``fold_in`` against ``jax.random`` on seeds at the edges of int32 and counts that wrap uint32."""

import jax
import numpy as np
import pytest

from gradlang.backend import keys

SEEDS = [0, 1, 7, 12345, -1, -5, 2**31 - 1, -2**31]


@pytest.mark.parametrize("seed", SEEDS)
def test_prng_key_and_split_are_jaxs(seed):
    key = keys.prng_key(seed)
    assert key.dtype == np.uint32 and key.shape == (2,)
    np.testing.assert_array_equal(key, np.asarray(jax.random.PRNGKey(seed)))
    for n in (2, 3, 8):
        np.testing.assert_array_equal(keys.split(key, n), np.asarray(jax.random.split(jax.random.PRNGKey(seed), n)))


@pytest.mark.parametrize("seed", [0, 3, -7])
def test_folds_are_jaxs_fold_in_including_where_the_count_wraps(seed):
    key = np.asarray(jax.random.split(jax.random.PRNGKey(seed))[0])
    for start in (0, 40, 2**32 - 3):
        got = keys.folds(key, start, 6)
        want = np.stack([np.asarray(jax.random.fold_in(key, np.uint32((start + i) % 2**32))) for i in range(6)])
        np.testing.assert_array_equal(got, want)


def test_a_seed_wider_than_int32_is_prng_keys_own():
    np.testing.assert_array_equal(keys.prng_key(2**40 + 3), np.asarray(jax.random.PRNGKey(2**40 + 3)))


def test_draws_from_host_keys_equal_draws_from_jax_keys():
    """What a run does with them: the same normals from the host's key as from JAX's."""
    host = keys.split(keys.prng_key(4))[1]
    np.testing.assert_array_equal(np.asarray(jax.random.normal(host, (5,))),
                                  np.asarray(jax.random.normal(jax.random.split(jax.random.PRNGKey(4))[1], (5,))))
