"""Variational inference that converges by default, and its loose ends (issue 14).

- ``via dreg`` under ``renyi(alpha != 0)`` is a located error at check time (choose_estimators).
"""

from __future__ import annotations

import pytest

import gradlang
from gradlang.errors import GradlangError

CONJUGATE = """data y: real[N]
model {{
  mu ~ normal(0, 1)
  y ~ normal(mu + 0.2, 1)
}}
guide = mean_field via {via}
maximize {objective}
"""


@pytest.mark.parametrize("guide", ["family", "written"])
def test_dreg_under_renyi_with_alpha_is_a_located_check_error(guide):
    text = CONJUGATE.format(via="dreg", objective="renyi(alpha = 0.5, particles = 4)")
    if guide == "written":
        text = text.replace("guide = mean_field via dreg", "param m: real\nparam s: positive\n"
                            "guide {\n  mu ~ normal(m, s) via dreg\n}")
    with pytest.raises(GradlangError, match="dreg is derived for iwae") as err:
        gradlang.compile(text)
    line = text.splitlines().index(next(ln for ln in text.splitlines() if "via dreg" in ln)) + 1
    assert err.value.span is not None and err.value.span.line == line
    assert "renyi with alpha = 0.5" in str(err.value)
    # iwae (alpha = 0) and elbo keep dreg; renyi keeps reparam and stl
    for objective, via in [("iwae(particles = 4)", "dreg"), ("elbo(particles = 4)", "dreg"),
                           ("renyi(alpha = 0.5, particles = 4)", "stl"),
                           ("renyi(alpha = 0.5, particles = 4)", "reparam")]:
        gradlang.compile(CONJUGATE.format(via=via, objective=objective))
