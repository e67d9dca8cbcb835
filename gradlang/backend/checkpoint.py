"""Checkpoints: a solver's state written between chunks, so a killed run can be resumed.

A checkpoint directory holds two files, each written whole under a temporary name in the same
directory, flushed to disk, then renamed (``os.replace``), so a run killed at any moment leaves the
previous checkpoint or the new one, never half of one:

* ``state-DIGEST.npz``: the leaves of the solver's state pytree, ``leaf_0 ... leaf_{n-1}`` in
  ``jax.tree.leaves`` order (arrays only: no pickle, ``np.load(allow_pickle=False)`` reads it);
* ``checkpoint.json``, written after the state file it names, and so the commit point: the step
  reached, the history so far, whether the solver had converged, the state file's name (its
  digest), and a fingerprint of what the run depends on: the program text and const overrides,
  the data (names, shapes, dtypes and a digest of their bytes), the seed and the step count.
  Older state files are removed once it is in place.

The tree structure is not stored: on resume it is the one the solver's ``init`` builds for the same
program and data, and the leaves must match it in number, shape and dtype.  Since step t draws
from ``fold_in(key, t)`` and the state is restored bit for bit, a resumed run ends exactly where an
uninterrupted one does.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from ..errors import GradlangError

META = "checkpoint.json"
FORMAT = 1
EVERY_SECONDS = 1.0  # at most one write a second between chunks (the last state is always written)


class CheckpointError(GradlangError):
    """A checkpoint cannot be written, read, or does not belong to this run."""


def fingerprint(source_text: str, overrides: dict, data: dict, seed: int, steps: int) -> dict:
    """What a resumed run must share with the run that wrote the checkpoint."""
    digest = hashlib.blake2b(digest_size=16)
    shapes = {}
    for name in sorted(data):
        a = np.ascontiguousarray(np.asarray(data[name]))
        shapes[name] = [list(a.shape), str(a.dtype)]
        digest.update(name.encode() + str(a.shape).encode() + str(a.dtype).encode())
        digest.update(a.tobytes())
    program = hashlib.blake2b((source_text + "\0" + repr(sorted((k, str(v)) for k, v in overrides.items())))
                              .encode(), digest_size=16).hexdigest()
    return {"program": program, "data": shapes, "data_digest": digest.hexdigest(), "seed": int(seed),
            "steps": int(steps)}


def _atomic_write(path: Path, payload: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class Checkpoints:
    """The checkpoint directory of one run: ``save`` between chunks, ``load`` to resume."""

    def __init__(self, directory: str | Path, fingerprint: dict):
        self.dir = Path(directory)
        self.fingerprint = fingerprint
        self._last = 0.0

    def save(self, state, step: int, history: dict, converged_at: int | None, final: bool = False) -> None:
        """Write the state reached after ``step`` steps (between chunks at most every
        ``EVERY_SECONDS``; always when ``final``)."""
        now = time.perf_counter()
        if not final and now - self._last < EVERY_SECONDS:
            return
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            buf = io.BytesIO()
            np.savez(buf, **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(jax.tree.leaves(state))})
            payload = buf.getvalue()
            name = f"state-{hashlib.blake2b(payload, digest_size=16).hexdigest()}.npz"
            meta = {"format": FORMAT, "step": int(step), "converged_at": converged_at, "history": history,
                    "state": name, "fingerprint": self.fingerprint}
            _atomic_write(self.dir / name, payload)
            _atomic_write(self.dir / META, json.dumps(meta).encode())
            for old in self.dir.glob("state-*.npz"):
                if old.name != name:
                    old.unlink(missing_ok=True)
        except OSError as err:
            raise CheckpointError(f"cannot write the checkpoint in {self.dir}: {err.strerror or err}", None,
                                  "check that the directory is writable and the disk not full") from None
        self._last = time.perf_counter()

    def load(self, like):
        """``(state, step, history, converged_at)`` from the directory; ``like`` is the state the
        solver's ``init`` builds, whose structure, shapes and dtypes the stored leaves must have."""
        meta = self._meta()
        path = self.dir / Path(str(meta.get("state"))).name
        try:
            payload = path.read_bytes()
        except OSError as err:
            raise CheckpointError(f"cannot read {path}: {err.strerror or err}", None, None) from None
        if f"state-{hashlib.blake2b(payload, digest_size=16).hexdigest()}.npz" != path.name:
            raise CheckpointError(f"{path} is damaged (its digest does not match its name)", None,
                                  "start the run again without --resume")
        leaves, tree = jax.tree.flatten(like)
        with np.load(io.BytesIO(payload), allow_pickle=False) as f:
            stored = [f[f"leaf_{i}"] for i in range(len(f.files))]
        if len(stored) != len(leaves) or any(s.shape != np.shape(x) or s.dtype != np.asarray(x).dtype
                                             for s, x in zip(stored, leaves)):
            raise CheckpointError(f"the checkpoint in {self.dir} holds another solver's state", None,
                                  "it was written by another version of gradlang or another optimizer")
        return (jax.tree.unflatten(tree, [jax.numpy.asarray(s) for s in stored]), int(meta["step"]),
                meta["history"], meta.get("converged_at"))

    def _meta(self) -> dict:
        path = self.dir / META
        try:
            meta = json.loads(path.read_text())
        except FileNotFoundError:
            raise CheckpointError(f"no checkpoint in {self.dir}", None,
                                  "--resume DIR takes the directory a run wrote with --checkpoint DIR") from None
        except (OSError, ValueError) as err:
            raise CheckpointError(f"cannot read {path}: {err}", None, None) from None
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{path} has format {meta.get('format')}, this gradlang reads {FORMAT}", None, None)
        theirs, ours = meta.get("fingerprint", {}), self.fingerprint
        for field, what in (("program", "another program (or other --set values)"),
                            ("data", "data of other names or shapes"), ("data_digest", "other data"),
                            ("seed", "another seed"), ("steps", "another step count")):
            if theirs.get(field) != ours.get(field):
                shown = f" ({theirs.get(field)}, now {ours.get(field)})" if field in ("seed", "steps") else ""
                raise CheckpointError(f"the checkpoint in {self.dir} was written for {what}{shown}", None,
                                      "resume with exactly the program, data and settings of the run "
                                      "that wrote it, or start afresh without --resume")
        return meta
