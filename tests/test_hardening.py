"""Hardening (issue 9): each test here failed on the code the issue started from.

Item numbers refer to issue 9; numeric checks use a reference (scipy, NumPyro, closed form)."""

from __future__ import annotations

import pytest

import gradlang
from gradlang.errors import GradlangError

# ---- item 6: an expect block's value must be a scalar, found by `gradlang check` -------------

GUIDED = """data x: real[N]
model {
  mu ~ normal(0, 10)
  x ~ normal(mu, 1)
}
guide {
  param m: real[2] = 0
  mu ~ normal(m[0], 1)
}
"""


def test_expect_value_after_a_guide_draw_must_be_a_scalar():
    """After ``z ~ guide`` the value is checked too: logp/logq are scalars, a param vector is not."""
    with pytest.raises(GradlangError) as info:
        gradlang.compile(GUIDED + "maximize expect(particles = 2) {\n  z ~ guide\n"
                                  "  logp(model, z) - logq(guide, z) + m\n}\n")
    err = info.value
    assert "the last line of an expect block must be a real scalar, not real[2]" in err.message
    assert (err.span.line, err.span.col) == (12, 3)
    # the scalar form checks, and a scalar built from a nested expect does too
    gradlang.compile(GUIDED + "maximize expect(particles = 2) {\n  z ~ guide\n  logp(model, z) - logq(guide, z)\n}\n")
    gradlang.compile("param t: real[2] = 0\nmaximize expect(particles = 2) {\n  a ~ normal(t[0], 1)\n"
                     "  a + expect(particles = 2) { b ~ normal(t[1], 1); b^2 }\n}\n")
