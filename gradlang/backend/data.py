"""Supplied arrays -> the program's data: loading (npz, csv), checking shapes, binding dims.

A data declaration's symbolic dims are bound by the first array that uses them; every later use
must agree.  A mismatch names the array, its declared type and its actual shape.
"""

from __future__ import annotations

import csv
from pathlib import Path

import jax
import numpy as np

from ..errors import DataError, did_you_mean
from ..ir import nodes as ir

_NUMPY_DTYPES = {"real": np.float32, "int": np.int32, "bool": np.bool_}


def read_file(path: str | Path) -> dict[str, np.ndarray]:
    """Arrays of an .npz file, or the columns of a .csv file with a header row."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"data file not found: {path}", None, None)
    if path.suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                return {k: f[k] for k in f.files}
        except Exception as err:  # a corrupt or non-npz file
            raise DataError(f"cannot read {path}: {err}", None, None) from None
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            rows = list(csv.reader(f))
        if not rows:
            raise DataError(f"{path} is empty", None, None)
        header, body = rows[0], rows[1:]
        try:
            table = np.array([[float(x) for x in row] for row in body], dtype=np.float64).reshape(len(body), len(header))
        except ValueError as err:
            raise DataError(f"cannot read {path}: {err}", None, "a csv needs a header row and numbers") from None
        return {"__csv__": table, **{h.strip(): table[:, i] for i, h in enumerate(header)}}
    raise DataError(f"unknown data file type '{path.suffix}'", None, "use .npz or .csv")


def _from_csv(name: str, decl: ir.DataDecl, arrays: dict, claimed: set) -> np.ndarray | None:
    """A matrix declaration takes the csv columns named name0, name1, ... or name_0, ...;
    failing that, all columns that no other declaration claims."""
    table_cols = [k for k in arrays if k != "__csv__"]
    prefixed = [k for k in table_cols if k.startswith(name) and k[len(name):].lstrip("_").isdigit()]
    if prefixed:
        prefixed.sort(key=lambda k: int(k[len(name):].lstrip("_")))
        return np.stack([arrays[k] for k in prefixed], axis=1)
    rest = [k for k in table_cols if k not in claimed]
    return np.stack([arrays[k] for k in rest], axis=1) if rest else None


def gather(program: ir.Program, supplied: dict | None) -> dict[str, np.ndarray]:
    """Each declared data array: from ``supplied`` if there, else from its ``load(...)`` default."""
    supplied = dict(supplied or {})
    out, cache = {}, {}
    claimed = {n for n, d in program.data.items() if len(d.type.shape) < 2 and n in supplied}
    for name, decl in program.data.items():
        if name in supplied:
            out[name] = supplied[name]
            continue
        elif "__csv__" in supplied and len(decl.type.shape) == 2:
            found = _from_csv(name, decl, supplied, claimed)
            if found is not None:
                out[name] = found
        if name not in out and decl.source is not None:
            path = Path(decl.base_dir) / decl.source[0]
            if path not in cache:
                try:
                    cache[path] = read_file(path)
                except DataError as err:
                    raise DataError(err.message, decl.span, "the path is relative to the .grad file") from None
            if decl.source[1] not in cache[path]:
                raise DataError(f"{path} has no array '{decl.source[1]}'", decl.span,
                                f"it has: {', '.join(sorted(cache[path]))}")
            out[name] = cache[path][decl.source[1]]
        if name not in out:
            given = [k for k in supplied if k != "__csv__"]
            close = did_you_mean(name, given)
            if given:
                hint = (f"{close} " if close else "") + f"the supplied data has: {', '.join(sorted(given))}"
            else:
                hint = (f'pass it (--data file.npz, or fit(data={{"{name}": ...}})), or declare a default: '
                        f'= load("file.npz", "{name}")')
            raise DataError(f"no data for '{name}'", decl.span, hint)
    return out


def bind(program: ir.Program, arrays: dict) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """Check each array against its declaration, bind symbolic dims, cast to the element type."""
    dims = dict(program.dims)
    bound_by: dict[str, str] = {}
    computed: list = []  # (name, decl, axis, size expression, shape) of data sized by expressions
    out = {}
    for name, decl in program.data.items():
        arr = arrays[name]
        traced = isinstance(arr, jax.core.Tracer)  # objective_fn under jit/grad: shapes only
        if not traced:
            arr = np.asarray(arr)
        declared = decl.type
        if arr.ndim != len(declared.shape):
            raise DataError(f"data '{name}' has shape {tuple(arr.shape)} but is declared {declared}",
                            decl.span, f"it needs {len(declared.shape)} dims, the array has {arr.ndim}")
        for axis, (want, got) in enumerate(zip(declared.shape, arr.shape)):
            if isinstance(want, ir.SizeExpr):  # computed from sizes bound by the data: checked below
                computed.append((name, decl, axis, want, tuple(arr.shape)))
                continue
            if isinstance(want, str) and want not in dims:
                dims[want], bound_by[want] = int(got), name
                continue
            size = dims[want] if isinstance(want, str) else want
            if size != got:
                origin = (f"{want} = {size}, bound by '{bound_by[want]}'" if want in bound_by
                          else f"{want} = {size}") if isinstance(want, str) else f"size {size}"
                raise DataError(f"data '{name}' has shape {tuple(arr.shape)} but is declared {declared}",
                                decl.span, f"dim {axis} should be {origin}")
        if traced:
            out[name] = arr.astype(_NUMPY_DTYPES[declared.elem])
            continue
        _check_finite(name, decl, arr)
        if declared.elem != "real" and arr.dtype.kind == "f" and not np.all(np.mod(arr, 1) == 0):
            raise DataError(f"data '{name}' is declared {declared.elem} but has fractional values",
                            decl.span, "declare it real")
        out[name] = arr.astype(_NUMPY_DTYPES[declared.elem])
    for name, decl, axis, want, shape in computed:
        size = declared_size(want, dims, bound_by, f"data {name}")
        if size != shape[axis]:
            raise DataError(f"data '{name}' has shape {shape} but is declared {decl.type}", decl.span,
                            f"dim {axis} should be {want} = {size}")
    for where, shape in sized_declarations(program):
        for d in shape:
            if isinstance(d, ir.SizeExpr):
                declared_size(d, dims, bound_by, where)
    return out, dims


def sized_declarations(program: ir.Program):
    """(what, shape) of every declaration with a shape other than data's: params, typed latents."""
    for name, p in program.params.items():
        yield f"param {name}", p.type.shape
    for st in (program.model.stmts if program.model is not None else ()):
        if isinstance(st, ir.Sample) and st.shape:
            yield f"latent {st.name}", st.shape


def declared_size(d: ir.SizeExpr, dims: dict, bound_by: dict, where: str) -> int:
    """The value of a size expression once the data bind its names: a non-negative integer, or a
    DataError at the expression that says what the names were bound to."""
    names = d.names()
    missing = [n for n in names if n not in dims]
    if missing:
        raise DataError(f"size {d} of {where} needs {', '.join(missing)}, which no data binds", d.span,
                        "use only sizes that appear in the shapes of data declarations")
    value = d.value(dims)
    bound = ", ".join(f"{n} = {dims[n]}" for n in names)
    origin = "; ".join(f"{n} is bound by '{bound_by[n]}'" for n in names if n in bound_by)
    if value != value or float(value) != int(value):
        shown = "undefined (a division by zero)" if value != value else f"{value:g}, not an integer"
        raise DataError(f"size {d} of {where} is {shown}, with {bound}", d.span,
                        "a size must be a whole number once the data bind it" + (f" ({origin})" if origin else ""))
    if value < 0:
        raise DataError(f"size {d} of {where} is {int(value)}, with {bound}", d.span,
                        "a size must be non-negative once the data bind it" + (f" ({origin})" if origin else ""))
    return int(value)


def _check_finite(name: str, decl: ir.DataDecl, arr: np.ndarray) -> None:
    """Data must be finite: a NaN or inf would otherwise reach the optimiser and surface only as
    a non-finite objective at the first step, far from its cause.  The error names the array,
    points at its declaration, and gives the first bad index and how many there are."""
    if arr.dtype.kind not in "fc":
        return  # integer and bool arrays cannot hold NaN or inf
    bad = ~np.isfinite(arr)
    if not bad.any():
        return
    first = tuple(int(i) for i in np.argwhere(bad)[0])
    index = f"[{', '.join(map(str, first))}]" if first else ""
    count = int(bad.sum())
    more = f" ({count} of {arr.size} values are not finite)" if count > 1 else ""
    raise DataError(f"data '{name}' has {arr[first]} at {name}{index}{more}" if index else
                    f"data '{name}' is {arr[first]}", decl.span,
                    "NaN and inf make the objective non-finite: drop or impute those entries before the run")

