"""The gallery's ports of posteriordb models (examples/*.grad naming a posteriordb posterior): each
model block's log joint density equals the same model written by hand in NumPyro, as its Stan
program states it, at random points of the unconstrained space, Jacobians of the constraining
transforms included (NumPyro's ``potential_energy`` of both).  Tolerance: 1e-4 relative, float32.

The hand-written models follow the Stan programs (posteriordb's ``models/stan/*.stan``): a
constrained parameter with a prior on a wider support (``real<lower=0> sigma; sigma ~ normal(0, 2)``)
is an improper uniform on its constraint plus the prior's log density as a factor, Stan's own
reading (its truncation normaliser is a constant, added here where gradlang's domain narrowing
adds it); a parameter without a prior is flat."""

from __future__ import annotations

import zlib

import jax.numpy as jnp
import numpy as np
import pytest
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import potential_energy

import gradlang

from .posteriordb_models import EXAMPLES, PORTS, load_data


def test_the_gallery_has_at_least_six_ports_each_naming_its_posteriordb_model():
    assert len(PORTS) >= 6
    for name, (posterior, data, _) in PORTS.items():
        text = (EXAMPLES / f"{name}.grad").read_text()
        model = posterior.split("-", 1)[1]
        assert text.startswith(f"# posteriordb {model} (posterior {posterior})"), name
        assert "guide" in text and "solve {" in text, name
        assert (EXAMPLES / "data" / data).exists(), data


@pytest.mark.parametrize("name", sorted(PORTS))
def test_log_joint_equals_the_model_written_by_hand_in_numpyro(name: str):
    _, data_file, hand = PORTS[name]
    prog = gradlang.compile(EXAMPLES / f"{name}.grad")
    model, arrays = prog.bind()
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}
    data = load_data(data_file)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for _ in range(3):  # random points of the unconstrained space, around the prior's scale
        point = {}
        for site, (support, shape) in model.ppl.latents.items():
            point[site] = jnp.asarray(rng.normal(0, 0.7, biject_to(support).inverse_shape(shape)), jnp.float32)
        ours = float(potential_energy(model.ppl.model_fn, (arrays, {}), {}, point))
        theirs = float(potential_energy(hand, (data,), {}, point))
        assert np.isfinite(ours) and ours == pytest.approx(theirs, rel=1e-4), (name, point)
