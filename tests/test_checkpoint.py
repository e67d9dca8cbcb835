"""Checkpoints: a run killed (SIGKILL) and resumed ends bit for bit where the uninterrupted run ends;
the files are plain .npz/JSON; a checkpoint of another run is refused."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gradlang
from gradlang.backend.checkpoint import META, CheckpointError

# Monte-Carlo draws and minibatches every step: a resumed run must draw exactly what the
# uninterrupted one draws at each step, and restore the Adam moments bit for bit.
LONG = """
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
param m: real = 0
minimize mean((X @ w - y)^2) + expect { z ~ normal(m, 1); (z - 2)^2 }
solve { optimizer = adam(lr = 0.001); steps = 100000; batch = 32; seed = 7 }
"""


def _data(path, n=500, d=8):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(n, d)).astype(np.float32)
    np.savez(path, X=X, y=(X @ np.arange(d) + 0.1 * rng.normal(size=n)).astype(np.float32))


def _cli(*args):
    return [sys.executable, "-m", "gradlang.cli", "run", *map(str, args), "--quiet"]


def test_a_killed_run_resumes_to_the_bits_of_an_uninterrupted_one(tmp_path):
    program, data, ckpt = tmp_path / "long.grad", tmp_path / "data.npz", tmp_path / "ckpt"
    program.write_text(LONG)
    _data(data)
    victim = subprocess.Popen(_cli(program, "--data", data, "--checkpoint", ckpt))
    try:
        deadline = time.time() + 300
        while not (ckpt / META).exists():
            assert victim.poll() is None, "the run ended before it wrote a checkpoint"
            assert time.time() < deadline, "no checkpoint after 300 s"
            time.sleep(0.01)
        time.sleep(0.1)  # perhaps a later one
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    reached = json.loads((ckpt / META).read_text())["step"]
    assert 0 < reached < 100000, reached  # killed mid-run
    resumed, straight = tmp_path / "resumed.npz", tmp_path / "straight.npz"
    subprocess.run(_cli(program, "--data", data, "--resume", ckpt, "--out", resumed), check=True)
    subprocess.run(_cli(program, "--data", data, "--out", straight), check=True)
    with np.load(resumed) as a, np.load(straight) as b:
        assert set(a.files) == set(b.files)
        for name in ("params/w", "params/m", "history/step", "history/objective", "steps"):
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        assert int(a["steps"]) == 100000


ELBO = """
data y: real[N]
model {
  mu ~ normal(0, 10)
  y ~ normal(mu, 1)
}
guide = mean_field
maximize elbo(particles = 2)
solve { optimizer = adam(lr = 0.05); steps = 900; log_every = 50 }
"""
MINIBATCH = """
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
minimize mean((X @ w - y)^2)
solve { optimizer = momentum(lr = 0.01, beta = 0.9); steps = 700; batch = 16; log_every = 20 }
"""

JACOBIAN_DESCENT = """
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
param b: real = 0
minimize { fit: mean((X @ w + b - y)^2), small: sumsq(w - 1) + b^2 }
solve { optimizer = adam(lr = 0.05); steps = 600; log_every = 20; aggregator = upgrad }
"""


def _stop_after(calls: int):
    """A progress callback that presses Ctrl-C at its ``calls``-th call."""
    seen = []

    def progress(done, total, value):
        seen.append(done)
        if len(seen) == calls:
            raise KeyboardInterrupt

    return progress


@pytest.mark.parametrize("source, data", [
    (ELBO, {"y": np.random.default_rng(1).normal(3.0, 1.0, size=40).astype(np.float32)}),
    (MINIBATCH, {"X": np.random.default_rng(2).normal(size=(100, 3)).astype(np.float32),
                 "y": np.random.default_rng(3).normal(size=100).astype(np.float32)}),
    (JACOBIAN_DESCENT, {"X": np.random.default_rng(4).normal(size=(60, 3)).astype(np.float32),
                        "y": np.random.default_rng(5).normal(size=60).astype(np.float32)}),
], ids=["elbo", "minibatch", "jacobian_descent_raveled"])
def test_interrupted_fit_resumes_bit_identically(source, data, tmp_path, monkeypatch):
    from gradlang.backend import clock

    monkeypatch.setattr(clock, "TARGET_SECONDS", 1e-6)  # one segment a chunk: many looks
    monkeypatch.setattr("gradlang.backend.checkpoint.EVERY_SECONDS", 0.0)
    prog = gradlang.compile(source)
    first = prog.fit(data=data, checkpoint=tmp_path, progress=_stop_after(3))
    assert first.history.get("interrupted") and 0 < first.steps < prog.ir.solve.steps
    meta = json.loads((tmp_path / META).read_text())
    assert meta["step"] == first.steps and meta["history"]["step"] == first.history["step"]
    resumed = prog.fit(data=data, resume=tmp_path, checkpoint=tmp_path)
    straight = gradlang.compile(source).fit(data=data)
    for name in straight.params:
        np.testing.assert_array_equal(resumed.params[name], straight.params[name], err_msg=name)
    assert resumed.history == straight.history and resumed.steps == straight.steps
    # the files are plain: a JSON and arrays that load without pickle
    (state,) = [p for p in tmp_path.iterdir() if p.suffix == ".npz"]
    with np.load(state, allow_pickle=False) as f:
        assert all(f[k].dtype != object for k in f.files)


def test_a_checkpoint_of_another_run_is_refused(tmp_path):
    data = {"X": np.ones((10, 2), np.float32), "y": np.zeros(10, np.float32)}
    prog = gradlang.compile(MINIBATCH)
    prog.fit(data=data, steps=40, checkpoint=tmp_path)
    with pytest.raises(CheckpointError, match="another seed"):
        prog.fit(data=data, steps=40, seed=1, resume=tmp_path)
    with pytest.raises(CheckpointError, match="other data"):
        prog.fit(data={**data, "y": np.ones(10, np.float32)}, steps=40, resume=tmp_path)
    with pytest.raises(CheckpointError, match="another program"):
        gradlang.compile(MINIBATCH.replace("0.01", "0.02")).fit(data=data, steps=40, resume=tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        prog.fit(data=data, resume=tmp_path / "nowhere")
    done = prog.fit(data=data, steps=40, resume=tmp_path)  # a finished run resumes to itself
    assert done.steps == 40


def test_checkpoint_errors_are_user_errors_on_the_command_line(tmp_path, capsys):
    from gradlang.cli import main

    program = tmp_path / "p.grad"
    program.write_text("param x: real = 0\nminimize (x - 1)^2\nsolve { steps = 20 }\n")
    assert main(["run", str(program), "--quiet", "--resume", str(tmp_path / "none")]) == 1
    assert "no checkpoint in" in capsys.readouterr().err
