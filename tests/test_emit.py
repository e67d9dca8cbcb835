"""``gradlang compile F --emit jaxpr``: the jaxpr of the loss and its gradient, for deterministic and
Monte-Carlo objectives (a Monte-Carlo one takes the step's PRNG key as its last argument)."""

import re

import pytest

from gradlang.cli import main

from .conftest import ROOT

EXPECT_PROGRAM = """# a Gaussian policy on a quadratic reward, with no data
param m: real = 0
maximize expect(particles = 8) {
  a ~ normal(m, 1)
  -(a - 2)^2
}
solve { optimizer = adam(lr = 0.1); steps = 10 }
"""


def jaxpr(path, capsys) -> str:
    code = main(["compile", str(path), "--emit", "jaxpr"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


def top_level(text: str) -> tuple[list[str], str]:
    """The invars' types of the outermost jaxpr (the one not bound by a `let NAME =`) and its body."""
    starts = [m.end() for m in re.finditer(r"^\{ lambda [^;]*; ", text, re.MULTILINE)]  # consts before the ;
    assert len(starts) == 1, text[:2000]
    body = text[starts[0]:]
    head = body[: body.index(". let")]
    return re.findall(r"[a-z]+:([a-z0-9<>]+\[[0-9,]*\])", head), body


@pytest.mark.parametrize("name", ["eight_schools", "bandit"])
def test_monte_carlo_objective_takes_a_key(name, capsys):
    text = jaxpr(ROOT / "examples" / f"{name}.grad", capsys)
    types, body = top_level(text)
    assert types[-1] == "u32[2]"                                  # the step's (raw threefry) key, last
    key = re.search(r"([a-z]+):u32\[2\]\. let", body).group(1)
    assert re.search(rf"random_wrap\[impl=fry\] {key}\b", body)   # ... and the draws come from it
    assert "random_bits" in text
    assert "a Monte-Carlo objective" in text


def test_eight_schools_jaxpr_has_every_parameter_and_its_gradient(capsys):
    types, body = top_level(jaxpr(ROOT / "examples" / "eight_schools.grad", capsys))
    # mean_field's loc and scale of mu and tau (scalars) and of theta_raw (J = 8), the data y and
    # sigma (J = 8), then the key
    assert types == ["f32[]"] * 4 + ["f32[8]"] * 4 + ["u32[2]"]
    outs = body[body.rindex("in (") + 4: body.rindex(")")].split(", ")
    assert len(outs) == 1 + 6                                     # the loss and one gradient a param


def test_expect_block_without_data(tmp_path, capsys):
    path = tmp_path / "policy.grad"
    path.write_text(EXPECT_PROGRAM)
    text = jaxpr(path, capsys)
    types, body = top_level(text)
    assert types == ["f32[]", "u32[2]"] and "random_bits" in text                           # m, then the key
    outs = body[body.rindex("in (") + 4: body.rindex(")")].split(", ")
    assert len(outs) == 2                                         # the loss and d/dm


def test_deterministic_objective_takes_no_key(capsys):
    text = jaxpr(ROOT / "examples" / "ridge.grad", capsys)
    types, _ = top_level(text)
    assert "u32[2]" not in types and "random_bits" not in text and "Monte-Carlo" not in text
