"""A solver's loop on device: segments of steps, chunks of segments, one executable for any length.

A solver (``backend/solvers``) is stepped in *segments* of ``log_every`` steps: a ``lax.scan`` of
the bare step with a known trip count, its keys (step t's is ``fold_in(key, t)``) sliced from the
chunk's, which the host hashes (``chunk_keys``) before it dispatches the chunk, the step's
objectives as the scan's output.  After each segment the objectives (and reports, when the program
has some) are written into a preallocated record buffer when the segment ends on a log point, and
the segment's finiteness is checked.  A *chunk* is a ``while_loop`` over as many segments as the
host asks for (a traced count), so ONE compiled executable serves every chunk length (a run whose
step count is not a multiple of ``log_every`` ends with one shorter segment: a second executable).
The same chunk, guarded, replays a chunk that was not finite, refusing its first non-finite step.
How long a chunk is, and when the host reads it, is the host's business (``runtime``, ``clock``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ..lib.small_sums import total, whole_sums
from . import keys as host_keys
from .ahead import Ahead
from .build import Model
from .clock import KEY_BUFFER, Clock
from .compile_options import keeps_tree_reductions, wide_vectors

RECORD_BYTES = 2**22   # the record buffer's size (objectives and reports of a chunk's log points)
MAX_RECORDS = 512
KEY_BLOCK = 4096       # the longest segment (its keys are sliced from the chunk's at once)


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


def _finite(tree) -> jnp.ndarray:
    # one reduction over the floating leaves, raveled together (one op to compile, not one a
    # leaf): their sum is finite iff every entry is
    leaves = [jnp.ravel(x).astype(jnp.float32) for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.isfinite(total(jnp.concatenate(leaves))) if leaves else jnp.asarray(True)


def _where(ok, new, old):
    return jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)


def _whole_quotient(steps, block):
    """``steps // block`` for ``steps`` a multiple of ``block`` in [0, 2^24) (a chunk's steps
    before a segment, at most ``KEY_BUFFER``): a float32 product rounded, exact there (the
    product is within a few ulps of the whole quotient).  XLA:CPU does not fuse an integer
    division into the record update that uses it: it would be a kernel of its own, about 5 ms
    of every fit's compile."""
    return jnp.round(steps.astype(jnp.float32) * np.float32(1 / block)).astype(jnp.int32)


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
        self.fast = jit(partial(self._chunk, guarded=False))     # called by ``chunk``
        self.careful = jit(partial(self._chunk, guarded=True))  # called by ``replay``
        self.buffers = None  # the chunk's initial record buffer and summary (``prepare``)
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
        # the records' and the summary's initial values, made once on the host and passed to every
        # chunk: made in the chunk (zeros), each would be a kernel more for XLA:CPU to compile
        # (about 5 ms); passed, XLA copies them into the loop's buffers (a copy, no kernel)
        m = len(self.model.program.objectives)
        self.buffers = jax.device_put((
            jax.tree.map(lambda x: np.zeros((self.capacity,) + x.shape, x.dtype), self.shapes),
            np.zeros(m, np.float32)))

    def chunk(self, state, t0, t1, total, keys, data, *, block: int):
        """Segments of ``block`` steps from ``t0`` to ``t1`` (``_chunk``), dispatched."""
        return self.fast(state, t0, t1, total, keys, data, self.buffers, block=block)

    def replay(self, state, t0, t1, total, keys, data, *, block: int):
        """The same chunk, guarded: it refuses its first non-finite step (``_chunk``)."""
        return self.careful(state, t0, t1, total, keys, data, self.buffers, block=block)

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
            lowered = [self.fast.lower(state, np.int32(0), np.int32(0), np.int32(steps), keys, data, self.buffers,
                                       block=b)
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
        if len(summary):  # the objectives at ``state``
            tail = summary
        else:  # the last step's, where the solver's step reports them at the state it returns (and
            # a Monte-Carlo objective's, whose final value is an estimate asked for later)
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
        """Whether a chunk carries its last step's objectives in its loop (its summary): wherever
        the last record need not be the last step's (``every_segment_logged`` false)."""
        return not self.every_segment_logged(guarded)

    def _chunk(self, state, t0, t1, total, keys, data, buffers, *, block: int, guarded: bool):
        """``_segments``, traced with the sums a loop compiled with its options wants
        (``small_sums``: sliced where XLA's tree reduction rewriter would split them)."""
        with whole_sums(not keeps_tree_reductions(self.compiler_options)):
            return self._segments(state, t0, t1, total, keys, data, buffers, block=block, guarded=guarded)

    def _segments(self, state, t0, t1, total, keys, data, buffers, *, block: int, guarded: bool):
        """Segments of ``block`` steps from ``t0`` to ``t1`` (fewer when the solver terminates or
        something is not finite), the records and the summary starting from ``buffers``
        (``prepare``'s).

        Returns ``(state, t, bad, n, records, summary, params)``: the state after step ``t-1``;
        ``bad``, the first non-finite step (fast: the start of its segment; guarded: the step
        itself, refused), -1 for none; the number of records filled (None where the host counts
        them, ``every_segment_logged``); the records; ``summary``, the last step's objectives
        (for the progress bar; left out where the last record has them) followed by the
        objectives at the returned state (the run's final ones, if it ends there; left out
        where the solver's step reports them at the state it returns, and for a Monte-Carlo
        objective, whose final value is an estimate the host computes when it is asked for), each
        followed by its aggregate (``solver.objective``), which the host would otherwise compute
        in small executables; and the parameters at the returned state, unconstrained and constrained
        (the result's, if the run ends there, computed in the last segment; None where they are
        the state's own arrays, ``_unless_selected``).  A record's step, aggregate and objectives are
        one float32 row (the step's int32 bits): one buffer to update, not three.  ``Loop.read``
        reads them.

        Compile time is most of a short run's cost, and XLA:CPU compiles each kernel (fusion) of
        the loop on its own, a few milliseconds each, whatever its size: so the scaffolding
        around the step is kept to a few kernels.  The fast segment is a ``lax.scan`` of the
        solver's step alone with the objectives as the scan's output; finiteness is checked once
        a segment, on the state's moved variables and the segment's last objectives: a NaN update
        spreads to the state, so a non-finite step shows at the segment's end, and a recorded
        objective is always a checked one.  A solver that may terminate has each step skipped
        (``lax.cond``) once it has."""
        solver, le, cap = self.solver, self.log_every, self.capacity
        stops, stochastic = solver.may_terminate, self.model.stochastic
        every = self.every_segment_logged(guarded)
        blank = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), self.shapes)
        m = len(self.model.program.objectives)
        records, no_summary = buffers
        carries_summary = self.carries_last(guarded)

        def aggregate(values):  # the solver's (sign, mean or sum), so the host computes none
            return jnp.asarray(solver.objective({"values": values}), jnp.float32)[None]

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
            summary = last if carries_summary else None
            if not guarded:
                # the variables the steps move, where the solver names them (its parameters may be
                # computed from them, at a cost to compile), with the objectives the history
                # keeps: one reduction
                moved = solver.iterate(state) if hasattr(solver, "iterate") else solver.params(state)
                bad = jnp.where(_finite((last, moved)), bad, t)
            logged = True if every else (i > t) & ((i % le == 0) | (i == total) | solver.terminate(state))
            step_bits = jax.lax.bitcast_convert_type(i, jnp.float32)
            rec = {"row": jnp.concatenate([step_bits[None], aggregate(last), last.astype(jnp.float32)])}
            if "extras" in records:  # the solver's own quantities (violations, conflicts), at log points only
                rec["extras"] = solver.log_extras(state, data) if every else \
                    jax.lax.cond(logged, lambda: solver.log_extras(state, data), lambda: blank["extras"])
            if "reports" in records:
                report = lambda: self.model.reports(solver.params(state), data)
                rec["reports"] = report() if every else jax.lax.cond(logged, report, lambda: blank["reports"])
            # the next free slot (overwritten until a log point fills it); one a segment, where
            # every segment is logged
            slot = jnp.minimum(_whole_quotient(t - t0, block) if every else n, cap - 1)
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
        start = (state, t0, jnp.int32(-1), None if every else jnp.int32(0), records,
                 no_summary if carries_summary else None)
        if computes_params:  # overwritten in the last segment, unread if none runs
            start += (_placeholder(at_start, state),)
        state, t, bad, n, records, summary, *final = jax.lax.while_loop(more, segment, start)
        u = final[0][0] if computes_params else solver.params(state)
        parts = [summary] if carries_summary else []
        if not stochastic and not getattr(solver, "values_at_new_state", False):
            # the objectives at the chunk's last state: the run's final ones, if it is (a forward
            # pass here costs the compile less than an executable of its own: 10 ms against 70 on
            # a ridge regression)
            parts.append(jnp.asarray(self.model.objective_values(u, data, None), jnp.float32))
        summary = jnp.concatenate([x for v in parts for x in (v, aggregate(v))]) if parts else None
        return state, t, bad, n, records, summary, final[0] if computes_params else None


def _placeholder(tree, state):
    """A carry's initial value of ``tree``'s shapes that is never read: each leaf a leaf of
    ``state`` of the same shape and dtype where there is one (nothing computed), zeros otherwise
    (a broadcast: a kernel more for XLA:CPU to compile, about 5 ms)."""
    own = {(x.shape, x.dtype): x for x in jax.tree.leaves(state)}

    def leaf(x):
        found = own.get((x.shape, x.dtype))
        return jnp.zeros(x.shape, x.dtype) if found is None else found

    return jax.tree.map(leaf, tree)


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
