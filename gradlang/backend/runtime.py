"""The optimisation loop: any solver, stepped on device in chunks; the host looks by the clock.

A solver (``backend/solvers``) is stepped in *segments* of ``log_every`` steps: a ``lax.scan`` of
the bare step with a known trip count, its keys (step t's is ``fold_in(key, t)``) sliced from the
chunk's, which the host hashes (``keys``) before it dispatches the chunk, the step's objectives as
the scan's output.  After each segment the
objectives (and reports, when the program has some) are written into a preallocated record
buffer when the segment ends on a log point, and the segment's finiteness is checked.  A *chunk*
is a ``while_loop`` over as many segments as the host asks for (a traced count), so ONE compiled
executable serves every chunk length (a run whose step count is not a multiple of ``log_every``
ends with one shorter segment: a second executable).  The host sizes chunks by the clock
(``Clock``: about three looks a second) and dispatches chunk i+1 before it reads chunk i (JAX
dispatches asynchronously), so the device never waits for the progress bar, the history or a
checkpoint.  XLA compiles the loop's executables on a worker thread while the host initialises
the solver (``Loop.compile_ahead``), so a solver's own start-up compiles and the loop's overlap.

When a chunk was not finite, the chunk dispatched after it is dropped and it is replayed from its
start (same keys, same minibatches) with a guarded step that refuses the first non-finite step,
so a run that fails at step 5000 returns the state after step 4999.  Step t draws from
``fold_in(key, t)`` whatever the chunks around it, so a run is bit-identical however it was
chunked, interrupted or resumed from a checkpoint.  The runtime knows nothing of the method: not
the estimators' state, not how several objectives are aggregated, not the sign of a maximised one.
"""


from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import RuntimeError_
from ..gc_pause import paused
from . import keys as host_keys
from .build import Model
from .compile_options import wide_vectors
from .result import Result

TARGET_SECONDS = 0.3   # how long a chunk should run: the host looks about three times a second
GROWTH = 16            # a chunk is at most this many times longer than the one timed before it
RECORD_BYTES = 2**22   # the record buffer's size (objectives and reports of a chunk's log points)
MAX_RECORDS = 512
KEY_BLOCK = 4096       # the longest segment (its keys are sliced from the chunk's at once)
KEY_BUFFER = 16384     # the step keys a chunk is given, so the most steps it runs
COMPILE_AHEAD = True    # XLA compiles the loop on a worker thread while the host initialises (Loop.compile_ahead)


class NonFiniteError(RuntimeError_):
    """The objective or an update became NaN/inf; ``.result`` holds the last finite state."""

    result: Result | None = None


def chunk_keys(key, t0: int, n: int = KEY_BUFFER) -> np.ndarray:
    """The keys of a chunk's ``n`` steps from ``t0`` (step t's is ``fold_in(key, t)``, so a step
    draws the same whatever the chunks around it), zero-padded to ``KEY_BUFFER`` rows: one shape
    for every chunk, so one executable.  Hashed on the host (``keys.folds``: JAX's keys bit for
    bit): hashed inside the chunk, the keys cost every program's compile 0.1 s (XLA:CPU compiles a
    vectorised threefry slowly); hashed in the loop body, a threefry every step cost a cheap step
    8%; an executable of its own cost every fresh process its compile."""
    out = np.zeros((KEY_BUFFER, 2), np.uint32)
    n = min(n, KEY_BUFFER)
    out[:n] = host_keys.folds(key, t0, n)
    return out


def run_keys(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(loop key, init key)`` of a run: the split of ``PRNGKey(seed)``, made on the host."""
    loop_key, init_key = host_keys.split(host_keys.prng_key(seed))
    return loop_key, init_key


def seed_key(seed: int) -> np.ndarray:
    """``PRNGKey(seed)``, made on the host."""
    return host_keys.prng_key(seed)


def _finite(tree) -> jnp.ndarray:
    # one reduction over the floating leaves, raveled together (one op to compile, not one a
    # leaf): their sum is finite iff every entry is
    leaves = [jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.isfinite(jnp.sum(jnp.concatenate(leaves))) if leaves else jnp.asarray(True)


def _where(ok, new, old):
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def segment_length(log_every: int) -> int:
    """Steps of a segment: ``log_every``, or its largest divisor up to ``KEY_BLOCK`` (so that
    segment ends still fall on every log point while a segment's keys stay a small array)."""
    if log_every <= KEY_BLOCK:
        return log_every
    return max(d for d in range(1, KEY_BLOCK + 1) if log_every % d == 0)


class Loop:
    """The jitted functions of one solver's loop.  JAX compiles each once per shape of its
    arguments and keeps the executables with the function, so a ``Loop`` kept between fits of the
    same program, dims and optimizer (``Program`` does) runs later fits without compiling again.
    Data are arguments, never constants, so they may change between those fits.

    ``chunk`` runs whole segments of ``segment`` steps, as many as the host asks (a traced count);
    a run whose step count is not a multiple of ``segment`` ends with one shorter segment, which
    is a second executable: the segment's length is static, a ``lax.scan`` with a known trip
    count, whose body XLA compiles as well as a hand-written loop's (a dynamic trip count inside
    the segment cost a cheap step 15%)."""

    def __init__(self, model: Model, solver, log_every: int):
        self.model, self.solver, self.log_every = model, solver, max(1, int(log_every))
        self.segment = segment_length(self.log_every)
        self.capacity = None  # records a chunk holds; set by ``prepare`` from the reports' sizes
        self.shapes = None    # of one record, traced once by ``prepare``
        # XLA options for the loop: the machine's (``wide_vectors``), then the plan's (a short run
        # compiled for compile time)
        self.compiler_options = {**wide_vectors(), **dict(getattr(solver, "compile_options", ()))}
        options = {"compiler_options": self.compiler_options} if self.compiler_options else {}
        jit = partial(jax.jit, static_argnames="block", **options)
        self.chunk = jit(partial(self._chunk, guarded=False))
        self.replay = jit(partial(self._chunk, guarded=True))
        self.reports = jax.jit(lambda u, data: model.reports(u, data))
        self.objectives = jax.jit(self._objectives)

    def _objectives(self, u, data, key):
        values = self.model.objective_values(u, data, key)
        return values, self.solver.objective({"values": values})

    def prepare(self, state, data) -> None:
        """Size the record buffer from one record's bytes (reports may be large arrays)."""
        if self.capacity is not None:
            return

        def record(state):  # what a log point keeps: step, aggregate and objectives in one row; extras; reports
            rec = {"row": jnp.zeros(2 + len(self.model.program.objectives), jnp.float32)}
            if hasattr(self.solver, "log_extras"):
                rec["extras"] = self.solver.log_extras(state, data)
            if self.model.program.reports:
                rec["reports"] = self.model.reports(self.solver.params(state), data)
            return rec

        self.shapes = jax.eval_shape(record, state)  # traced, not computed
        size = sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(self.shapes))
        self.capacity = int(np.clip(RECORD_BYTES // max(size, 1), 4, MAX_RECORDS))

    def compile_ahead(self, init: Callable[[dict], object], data: dict, key, steps: int) -> Ahead | None:
        """Start XLA compiling the executables a run of ``steps`` steps will call (its chunk, the
        short last segment's, the reports) on a worker thread, before the
        solver is initialised: the host then initialises (whose own compiles, e.g. a Laplace
        start's mode search or a prox method's step-size estimate, run on the other core) while
        XLA compiles, and the reports compile while the loop runs.  ``init`` is a thunk
        of the data giving the initial state, or one of its shapes and dtypes (a solver's
        ``state_like``), traced by ``jax.eval_shape``.  Tracing and lowering run here,
        on the calling thread (NumPyro's handler stack is a global, not thread-safe); only XLA's
        compile, which releases the GIL, runs on the worker.  JAX keeps each executable with its
        jitted function, so the run's calls find them compiled.  Returns None when the initial
        state cannot be traced without running it (the run then compiles as it goes)."""
        try:
            state = jax.eval_shape(init, data)  # data as an argument: nothing computed eagerly
            self.prepare(state, data)
            clock = Clock(self.segment, self.capacity, steps)
            blocks = {clock.plan(0)[0]}  # the first chunk's segment length, and the short last segment's
            if steps > self.segment and steps % self.segment:
                blocks.add(steps % self.segment)
            keys = jax.ShapeDtypeStruct((KEY_BUFFER, 2), np.uint32) if self.solver.keyed else None
            lowered = [self.chunk.lower(state, np.int32(0), np.int32(0), np.int32(steps), keys, data, block=b)
                       for b in sorted(blocks, reverse=True)]
            n_loop = len(lowered)  # what the loop calls: waited for before its first dispatch
            if self.model.program.reports:  # at the parameters' shapes (params may compute: averaging)
                lowered.append(self.reports.lower(jax.eval_shape(self.solver.params, state), data))
        except Exception:  # noqa: BLE001 -- only a head start: the run traces and compiles as it goes
            return None
        return Ahead(lowered, n_loop)

    def read(self, out, t0: int, block: int, guarded: bool) -> ChunkRead:
        """What the host needs of a chunk's outputs (``_chunk``), read from the device."""
        state, t, _, n, records, summary, params = out
        t, m = int(t), len(self.model.program.objectives)
        n = (t - t0) // block if self.every_segment_logged(guarded) else int(n)
        rows = np.asarray(records["row"])[:n]
        summary = np.zeros(0, np.float32) if summary is None else np.asarray(summary)
        if self.carries_last(guarded):
            last, aggregate, summary = summary[:m], float(summary[m]), summary[m + 1:]
        else:  # the last record is the last step's
            last, aggregate = (rows[-1, 2:], float(rows[-1, 1])) if n else (None, float("nan"))
        if len(summary):  # the objectives at ``state`` (a Monte-Carlo objective's: the last segment's means)
            tail = summary
        else:  # the last step's, where the solver's step reports them at the state it returns
            tail = None if last is None else np.append(last, np.float32(aggregate))
        return ChunkRead(state, t, rows, records, last, aggregate, tail, params)

    def every_segment_logged(self, guarded: bool) -> bool:
        """Whether every segment of a chunk ends on a log point and runs whole: segments of
        ``log_every`` steps (a short one ends at the run's last step or realigns to a log point),
        a solver that never stops early, no guarded replay.  Then a chunk keeps no count of its
        records (the host knows it: one a segment) and no copy of its last objectives (its last
        record has them): each value the loop carries or computes is a kernel more to compile."""
        return self.segment == self.log_every and not self.solver.may_terminate and not guarded

    def carries_last(self, guarded: bool) -> bool:
        """Whether a chunk carries its last step's objectives in its loop (its summary): a
        Monte-Carlo objective's, carried with their segment means anyway, and wherever the last
        record need not be the last step's (``every_segment_logged`` false)."""
        return self.model.stochastic or not self.every_segment_logged(guarded)

    def _chunk(self, state, t0, t1, total, keys, data, *, block: int, guarded: bool):
        """Segments of ``block`` steps from ``t0`` to ``t1`` (fewer when the solver terminates or
        something is not finite).

        Returns ``(state, t, bad, n, records, summary, params)``: the state after step ``t-1``;
        ``bad``, the first non-finite step (fast: the start of its segment; guarded: the step
        itself, refused), -1 for none; the number of records filled (None where the host counts
        them, ``every_segment_logged``); the records; ``summary``, the last step's objectives
        (for the progress bar; left out where the last record has them) followed by the
        objectives at the returned state (the run's final ones, if it ends there; for a
        Monte-Carlo objective, the means over the last segment: its final estimate; left out
        where the solver's step reports them at the state it returns), each followed by its
        aggregate (``solver.objective``), which the host would otherwise compute in small
        executables; and the parameters at the returned state, unconstrained and constrained
        (the result's, if the run ends there, computed in the last segment; None where they are
        the state's own arrays, ``_unless_selected``).  A record's step, aggregate and objectives are
        one float32 row (the step's int32 bits): one buffer to update, not three.  ``Loop.read``
        reads them.

        Compile time is most of a short run's cost, and XLA:CPU compiles each kernel (fusion) of
        the loop on its own, a few milliseconds each, whatever its size: so the scaffolding
        around the step is kept to a few kernels.  The fast segment is a ``lax.scan`` of the
        solver's step alone with the objectives as the scan's output; finiteness is checked once
        a segment, on the state's moved variables and the segment's last objectives (its mean, for
        a Monte-Carlo objective): a NaN update spreads to the state, so a non-finite step shows
        at the segment's end, and a recorded objective is always a checked one.  A solver that may
        terminate has each step skipped (``lax.cond``) once it has."""
        solver, le, cap = self.solver, self.log_every, self.capacity
        stops, stochastic = solver.may_terminate, self.model.stochastic
        every = self.every_segment_logged(guarded)
        blank = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), self.shapes)
        m = len(self.model.program.objectives)
        records = jax.tree.map(lambda x: jnp.zeros((cap,) + x.shape, x.dtype), blank)
        carries_summary = self.carries_last(guarded)

        def fast(s, x):  # the bare step: anything more in the carry cost a cheap step 15% (XLA:CPU)
            s, stats = solver.step(s, data, *x)
            return s, stats["values"]

        def skipping(c, x):  # a solver that may terminate: no step once it has
            s, last, ran = c
            done = solver.terminate(s)

            def stepped():
                new, stats = solver.step(s, data, *x)
                return new, stats["values"]

            s, values = jax.lax.cond(done, lambda: (s, last), stepped)
            return (s, values, ran + (~done).astype(jnp.int32)), values

        def careful(c, x):
            (s, last, ran), bad = c
            i, k = x
            new, stats = solver.step(s, data, i, k)
            live = (bad < 0) & ~solver.terminate(s)
            fine = _finite((stats["values"], new))
            take = live & fine
            values = jnp.where(take, stats["values"], last)
            return ((_where(take, new, s), values, ran + take.astype(jnp.int32)),
                    jnp.where(live & ~fine, i, bad)), values

        def segment(c):
            state, t, bad, n, records = c[:5]
            xs = (t + jnp.arange(block, dtype=jnp.int32),
                  jax.lax.dynamic_slice_in_dim(keys, t - t0, block) if keys is not None else None)
            start = (state, jnp.zeros(m, jnp.float32), jnp.int32(0))
            if guarded:
                ((state, _, ran), bad), ys = jax.lax.scan(careful, (start, bad), xs)
            elif stops:
                (state, _, ran), ys = jax.lax.scan(skipping, start, xs)
            else:
                state, ys = jax.lax.scan(fast, state, xs)
                ran = jnp.int32(block)
            i = t + ran
            last = ys[-1]
            if not stochastic:
                summary = last if carries_summary else None
            elif stops or guarded:  # the steps run are the first ``ran``
                active = (jnp.arange(block) < ran)[:, None]
                summary = jnp.concatenate([last, jnp.sum(jnp.where(active, ys, 0), 0) / jnp.maximum(ran, 1)])
            else:  # one output for both (two separate ones slowed a cheap step by 15% on XLA:CPU)
                summary = jnp.concatenate([last, jnp.mean(ys, 0)])
            if not guarded:
                # the variables the steps move, where the solver names them (its parameters may be
                # computed from them, at a cost to compile), with the objectives the history
                # keeps (the mean of the segment's, for a Monte-Carlo objective): one reduction
                moved = solver.iterate(state) if hasattr(solver, "iterate") else solver.params(state)
                bad = jnp.where(_finite((summary if stochastic else last, moved)), bad, t)
            logged = True if every else (i > t) & ((i % le == 0) | (i == total) | solver.terminate(state))
            step_bits = jax.lax.bitcast_convert_type(i, jnp.float32)
            objective = jnp.asarray(solver.objective({"values": last}), jnp.float32)
            rec = {"row": jnp.concatenate([step_bits[None], objective[None], last.astype(jnp.float32)])}
            if "extras" in records:  # the solver's own quantities (violations, conflicts), at log points only
                rec["extras"] = solver.log_extras(state, data) if every else \
                    jax.lax.cond(logged, lambda: solver.log_extras(state, data), lambda: blank["extras"])
            if "reports" in records:
                report = lambda: self.model.reports(solver.params(state), data)
                rec["reports"] = report() if every else jax.lax.cond(logged, report, lambda: blank["reports"])
            # the next free slot (overwritten until a log point fills it); one a segment, where
            # every segment is logged
            slot = jnp.minimum(jax.lax.div(t - t0, block) if every else n, cap - 1)  # t >= t0: no floor's sign fix
            records = jax.tree.map(lambda b, r: jax.lax.dynamic_update_index_in_dim(b, r.astype(b.dtype), slot, 0),
                                   records, rec)
            out = state, i, bad, None if every else n + logged.astype(jnp.int32), records, summary
            if computes_params:  # the parameters at the chunk's last state, in its last segment
                out += (jax.lax.cond(more(out), lambda: c[-1], lambda: params_at(state)),)
            return out

        def more(c):
            state, t, bad = c[:3]
            return (t < t1) & ~solver.terminate(state) & (bad < 0)

        def params_at(state):
            u = solver.params(state)
            return u, self.model.constrain(u)

        # the result's parameters, if the run ends here: computed where they are traced anyway (an
        # averaged iterate, a Laplace frame's map), not by executables of their own after the
        # loop (0.17 s of compiling for a VI fit in its Laplace frame); none where they are the
        # state's own arrays (``_unless_selected``)
        at_start = params_at(state)  # traced for its identity and shapes only: unused, so left out by XLA
        computes_params = _unless_selected(state, *at_start) is not None
        width = m * (2 if stochastic else 1) if carries_summary else 0
        start = (state, t0, jnp.int32(-1), None if every else jnp.int32(0), records,
                 jnp.zeros(width, jnp.float32) if carries_summary else None)
        if computes_params:
            start += (jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), at_start),)
        state, t, bad, n, records, summary, *final = jax.lax.while_loop(more, segment, start)
        u = final[0][0] if computes_params else solver.params(state)
        parts = [summary[:m]] if carries_summary else []
        if stochastic:  # the last segment's means: the Monte-Carlo objective's final estimate
            parts.append(summary[m:])
        elif not getattr(solver, "values_at_new_state", False):
            # the objectives at the chunk's last state: the run's final ones, if it is (a forward
            # pass here costs the compile less than an executable of its own: 10 ms against 70 on
            # a ridge regression)
            parts.append(jnp.asarray(self.model.objective_values(u, data, None), jnp.float32))
        # each with its aggregate (the solver's: sign, mean or sum), so the host computes none
        aggregate = lambda v: jnp.asarray(solver.objective({"values": v}), jnp.float32)[None]
        summary = jnp.concatenate([x for v in parts for x in (v, aggregate(v))]) if parts else None
        return state, t, bad, n, records, summary, final[0] if computes_params else None


def _unless_selected(state, u: dict, constrained: dict):
    """``(u, constrained)``, or None where both only select leaves of the state (no averaging, no
    constraining transform: each leaf is the state's own array), so that the host selects them
    itself (``solver.params``, ``model.constrain``: no computation) instead of the chunk
    returning copies of the state's arrays.

    Why the chunk keeps its outputs few: on XLA:CPU, work after the loop in the chunk's
    executable (copies, computed outputs) slowed every step of the loop itself, though the
    compiled loop body was the same instruction for instruction.  An 8-task Jacobian-descent
    step ran 3-5% slower with the parameters' copies as outputs than without; the logistic VI
    step (``benchmarks/vi.py``) 132 us against 121 with its constrained guide parameters
    computed after the loop.  So parameters that do compute are computed in the chunk's last
    segment (a ``lax.cond`` in the loop), and the loop returns them."""
    own = {id(x) for x in jax.tree.leaves(state)}
    selected = all(id(x) in own for x in jax.tree.leaves(u)) and \
        jax.tree.structure(constrained) == jax.tree.structure(u) and \
        all(a is b for a, b in zip(jax.tree.leaves(constrained), jax.tree.leaves(u)))
    return None if selected else (u, constrained)


class ChunkRead(NamedTuple):
    """A chunk's outputs as the host reads them (``Loop.read``)."""

    state: object
    t: int                      # the state is after step t - 1
    rows: np.ndarray            # the filled records' rows: step (int32 bits), aggregate, objectives
    records: dict               # the record buffers (extras and reports: their first len(rows))
    last: np.ndarray | None     # the last step's objectives
    last_aggregate: float       # and their aggregate
    tail: np.ndarray | None     # the objectives at ``state`` and their aggregate: the run's final ones, if it ends here
    params: tuple | None        # the parameters at ``state``, unconstrained and constrained (None: the state's own)


class Ahead:
    """XLA compiles of lowered executables, in order, on a worker thread.  A failed compile is
    dropped: the run's own call compiles again and reports the error where it belongs."""

    def __init__(self, lowered: list, loop_executables: int):
        self.loop_executables = loop_executables  # the first ones: what the loop calls
        self._done = [threading.Event() for _ in lowered]
        self._thread = threading.Thread(target=self._compile, args=(lowered,), daemon=True)
        self._thread.start()

    def _compile(self, lowered: list) -> None:
        for low, done in zip(lowered, self._done):
            try:
                low.compile()
            except Exception:  # noqa: BLE001,S110 -- see the class docstring
                pass
            finally:
                done.set()

    def wait(self, n: int | None = None) -> None:
        """Wait for the first ``n`` compiles (all by default) before calling one of them: JAX
        would otherwise compile it a second time beside the first."""
        for done in self._done[:n]:
            done.wait()


class Clock:
    """Chunk lengths from the clock: about ``TARGET_SECONDS`` of device time a chunk, in whole
    segments, never more records than the buffer holds nor more steps than ``KEY_BUFFER``; the
    last segment of a run may be short."""

    def __init__(self, segment: int, capacity: int, steps: int):
        self.seg, self.steps = segment, steps
        # segments a chunk may hold: one record each (+ the last), and keys for their steps
        self.most = max(1, min(capacity - 1, KEY_BUFFER // segment))
        self.n = 1  # segments of the next chunk: the first two are one each, dispatched untimed

    def observe(self, steps: int, seconds: float) -> None:
        """A chunk of ``steps`` steps ran for ``seconds``: size the next ones from its rate."""
        if steps <= 0:
            return
        want = steps * TARGET_SECONDS / max(seconds, 1e-6) / self.seg
        self.n = int(np.clip(want, 1, max(1, steps // self.seg) * GROWTH))

    def plan(self, t0: int) -> tuple[int, int]:
        """``(segment length, end)`` of the chunk starting at ``t0``."""
        if t0 % self.seg:  # realign (a checkpoint of another segment length)
            b = min(self.seg - t0 % self.seg, self.steps - t0)
            return b, t0 + b
        whole = self.steps - self.steps % self.seg
        if t0 >= whole:  # the short last segment
            return self.steps - t0, self.steps
        return self.seg, min(t0 + min(self.n, self.most) * self.seg, whole)


def _append(history: dict, rows: np.ndarray, records: dict, names: list[str]) -> None:
    """A chunk's filled records onto the history: ``rows``, its filled rows (step, aggregate,
    objectives), and ``records``, its record buffers (extras, reports: read for the rows' count)."""
    n = len(rows)
    if n <= 0:
        return
    history["step"] += rows[:, 0].view(np.int32).tolist()
    history["objective"] += rows[:, 1].astype(float).tolist()
    for j, name in enumerate(names):
        history["objectives"][name] += rows[:, 2 + j].astype(float).tolist()
    for name, v in records.get("extras", {}).items():
        history.setdefault(name, [])
        history[name] += [x.tolist() for x in np.asarray(v)[:n]]
    for name, v in records.get("reports", {}).items():
        history["reports"][name] += [x.tolist() for x in np.asarray(v)[:n]]


def takes_objectives(progress: Callable) -> bool:
    """Whether a progress callback takes a fourth argument: the objectives by name (several
    objectives only), after ``(done, total, objective)``; a three-argument callback still works."""
    import inspect

    try:
        params = list(inspect.signature(progress).parameters.values())
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return any(p.kind == p.VAR_POSITIONAL for p in params) or len(positional) >= 4


def run(model: Model, solver, data: dict, *, steps: int, seed: int, log_every: int,
        progress: Callable | None = None, loop: Loop | None = None, checkpoint=None, resume=None) -> Result:
    """Run ``solver`` on ``model`` for ``steps`` steps (fewer when it converges).  ``loop``, when
    given, is this program's compiled loop from an earlier fit with the same dims and settings;
    ``checkpoint`` (a ``checkpoint.Checkpoints``) receives the state between chunks; ``resume``
    (one too) supplies the state to continue from."""
    start = time.perf_counter()
    collector = paused()  # until the first chunk is dispatched: tracing sets off full collections
    try:
        data = {k: jax.device_put(v) for k, v in data.items()}  # jnp.asarray compiles a copy per shape
        key, init_key = run_keys(seed)
        loop = loop or Loop(model, solver, log_every)
        init = lambda data: solver.init(model.init(init_key, data), data, key)
        # what the ahead compile traces for the state's shapes: the solver's placeholder state
        # where it has one (its init is then traced while XLA compiles the loop, not before)
        shaped = (lambda data: solver.state_like(model.init(init_key, data), data)) \
            if hasattr(solver, "state_like") else init
        fresh = loop.capacity is None  # a loop kept from an earlier fit has its executables already
        ahead = (loop.compile_ahead(shaped, data, key, steps)
                 if COMPILE_AHEAD and fresh and resume is None and steps > 0 else None)
    except BaseException:
        collector.resume()
        raise
    try:  # an error on the way still waits for the worker (a process must not exit in its compile)
        state = init(data)
        loop.prepare(state, data)
        names = [o.name for o in model.program.objectives]
        history: dict = {"step": [], "objective": [], "objectives": {n: [] for n in names},
                         "reports": {n: [] for n in model.program.reports}}
        done, converged_at = 0, None
        if resume is not None:
            state, done, history, converged_at = resume.load(state)
        clock, total = Clock(loop.segment, loop.capacity, steps), np.int32(steps)
        by_name = progress is not None and takes_objectives(progress)
        tail, failed_at, interrupted, final = None, None, False, None

        def dispatch(state, t0: int):
            block, t1 = clock.plan(t0)
            keys = chunk_keys(key, t0, t1 - t0) if solver.keyed else None
            out = loop.chunk(state, np.int32(t0), np.int32(t1), total, keys, data, block=block)
            return state, t0, t1, block, keys, out, time.perf_counter()

        if ahead is not None:
            ahead.wait(ahead.loop_executables)
        try:
            pending = dispatch(state, done) if done < steps and converged_at is None else None
            collector.resume()  # the loop (and a progress callback's garbage) collects as usual
            looked = time.perf_counter()
            while pending is not None:
                before, t0, t1, block, keys, out, sent = pending
                following = dispatch(out[0], t1) if t1 < steps else None  # before reading this one
                guarded = int(out[2]) >= 0
                if guarded:  # not finite: replay from the chunk's start, refusing the bad step
                    following = None
                    out = loop.replay(before, np.int32(t0), np.int32(t1), total, keys, data, block=block)
                    failed_at = int(out[2]) if int(out[2]) >= 0 else None
                got = loop.read(out, t0, block, guarded)
                now = time.perf_counter()
                clock.observe(got.t - t0, now - max(sent, looked))
                looked = now
                _append(history, got.rows, got.records, names)
                state, done = got.state, got.t
                if got.t > t0:  # the parameters at ``state`` (a chunk that took no step, its solver
                    # done or its first step refused, returns its start: the last chunk's), and the
                    # final objectives so far and their aggregate (a Monte-Carlo objective's: its
                    # last segment's means)
                    final, tail = got.params, got.tail
                if progress and got.t > t0:
                    named = (dict(zip(names, map(float, got.last))),) if len(names) > 1 and by_name else ()
                    progress(done, steps, got.last_aggregate, *named)
                t = got.t
                if failed_at is not None:
                    break
                if t < t1:  # the solver's own test held
                    converged_at = done
                if checkpoint is not None:
                    checkpoint.save(state, done, history, converged_at, final=False)
                if converged_at is not None:
                    break
                pending = following if following is not None or t >= steps else dispatch(state, done)
        except KeyboardInterrupt:
            interrupted = True
        if checkpoint is not None and failed_at is None:
            checkpoint.save(state, done, history, converged_at, final=True)
        if ahead is not None:
            ahead.wait()
        return _result(model, solver, loop, state, data, seed, history, done, tail, failed_at, converged_at,
                       interrupted, start, final)
    finally:
        collector.resume()
        if ahead is not None:
            ahead.wait()


ESTIMATE_DRAWS = 64  # independent evaluations of a Monte-Carlo objective at the final parameters


def estimate(model: Model, solver, u: dict, data: dict, seed: int):
    """``(total, its standard error, {name: value}, {name: standard error})``: a Monte-Carlo
    objective at ``u`` over the full data, the mean of ``ESTIMATE_DRAWS`` independent evaluations
    of the program's own estimator (each with its particles), and the standard error of that mean,
    sd / sqrt(draws).  Under the VI defaults' ``reject=nonfinite``, over the evaluations that
    accepted a particle."""
    keys = host_keys.split(seed_key(seed + 1), ESTIMATE_DRAWS)

    @jax.jit
    def draws(u, data, keys):
        values = jax.vmap(lambda k: model.objective_values(u, data, k))(keys)
        return values, jax.vmap(lambda v: solver.objective({"values": v}))(values)

    values, totals = (np.asarray(x, np.float64) for x in draws(u, data, keys))
    defaults = model.program.vi_defaults
    if defaults is not None and defaults.reject_nonfinite:
        # an evaluation none of whose particles was accepted is NaN: it estimates nothing (the
        # fit skipped such steps too); the estimate is over the others
        kept = np.isfinite(totals)
        values, totals = values[kept], totals[kept]
    se = lambda x: float(x.std(0, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")
    names = [o.name for o in model.program.objectives]
    return (float(totals.mean()), se(totals), {n: float(values[:, i].mean()) for i, n in enumerate(names)},
            {n: se(values[:, i]) for i, n in enumerate(names)})


def _result(model, solver, loop, state, data, seed, history, done, tail, failed_at, converged_at,
            interrupted, start, final=None) -> Result:
    """The run's Result; ``final``: the parameters at ``state`` and their constrained values, as the
    last chunk returned them (None when no chunk ran, or where they are the state's own arrays:
    computed here, a selection of the state's arrays in the latter case)."""
    names = [o.name for o in model.program.objectives]
    if hasattr(solver, "finish"):  # the solver's own look at its final state (its warnings)
        solver.finish(state)
    if final is None:
        final = (u := solver.params(state), model.constrain(u))
    u_final, constrained = final
    reports = loop.reports(u_final, data) if model.program.reports else {}
    estimate_fn = None
    m = len(names)
    if model.stochastic and tail is not None and failed_at is None:
        # a Monte-Carlo objective: the last segment's mean until the estimate at the final
        # parameters is asked for (it compiles an evaluation the run itself does not need)
        values, total = tail[:m], tail[m]
        estimate_fn = partial(estimate, model, solver, u_final, data, seed)
    elif not model.stochastic and tail is not None:  # the last chunk's, at this state
        values, total = tail[:m], tail[m]
    else:
        values, total = loop.objectives(u_final, data, seed_key(seed + 1) if model.stochastic else None)
    result = Result(
        params={k: jax.tree.map(np.asarray, v) for k, v in constrained.items()},
        _objective=float(total), _objectives={n: float(v) for n, v in zip(names, np.asarray(values))},
        estimate_fn=estimate_fn,
        reports={k: np.asarray(v) for k, v in reports.items()},
        history=history, steps=done, seed=seed, seconds=time.perf_counter() - start,
        unconstrained={k: jax.tree.map(np.asarray, v) for k, v in u_final.items()},
        converged=converged_at is not None, converged_at=converged_at,
    )
    if getattr(solver, "constrained", False):
        result.constraints = solver.constraint_report(state, data)
    if len(names) > 1 and failed_at is None:
        from .solvers.conflict import report
        if model.program.lowers:  # the objectives' hypergradients, through the lower solution
            from .solvers.hypergradient import conflict_report as report

        result.conflicts_fn = partial(report, model, u_final, data, seed + 3)
    if model.ppl is not None and model.program.guide is not None:
        from .posterior import sample_guide, summarize

        # computed when first asked for (the API may never need it; --out does)
        result.posterior_fn = lambda: summarize(sample_guide(model, u_final, data, 1000, seed + 2))
        if not model.program.guide.stmts or not any(  # k̂ weighs sampled draws: not for an enumerated guide
                getattr(st, "via", None) is not None and st.via.value == "enum" for st in model.program.guide.stmts):
            from .psis import diagnostics

            result.diagnostics_fn = lambda: diagnostics(model, u_final, data, seed + 4)
            from .psis_posterior import psis_posterior

            result.psis_posterior_fn = lambda: psis_posterior(model, u_final, data, seed + 5)
    if failed_at is not None:
        err = NonFiniteError(f"the objective or its update became non-finite at step {failed_at + 1}",
                             model.program.objectives[0].span,
                             f"the result keeps the parameters after step {failed_at}, the last finite ones; "
                             "try a smaller learning rate, or look for log/sqrt of non-positive values")
        err.result = result
        raise err
    if interrupted:
        result.history["interrupted"] = True
    return result
