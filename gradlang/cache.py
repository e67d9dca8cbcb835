"""The persistent compilation cache: what a run compiles, kept on disk for the next process.

Almost all of a short run's time is XLA compiling the run's executables (the solver loop's chunk,
the final objectives, the solver's init) and building the parser's LALR tables.  Both depend only on
the program, the shapes and the library versions, so a second process can load them instead:

* XLA executables go to JAX's own persistent cache (``jax_compilation_cache_dir``): the key is a
  hash of the lowered module, the compile options, the backend and the jax/jaxlib versions, so a
  changed program, shape or version misses and compiles afresh.  JAX writes only executables that
  took ``jax_persistent_cache_min_compile_time_secs`` (default 1 s) to compile; ours take 0.05-1 s,
  so the floor is lowered to 0 (``jax_persistent_cache_min_entry_size_bytes`` stays at JAX's 0:
  no floor on size either; an entry is a few kB, a program's set a few hundred).
* The parser's tables go to a file written by ``Lark.save``, named by a hash of the grammar text
  and the Lark and Python versions.  They are the compiler's own, not a program's, so they are
  kept unless the cache is switched off, the API's default included (``parser_cache_file``).

The directory: ``$GRADLANG_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradlang/xla``, else
``~/.cache/gradlang/xla``.  The ``gradlang`` command uses it unless ``--no-cache`` or
``GRADLANG_CACHE=0``; the Python API keeps XLA's executables only after
``gradlang.use_compilation_cache()`` (a library does not change its user's global JAX
configuration on import).  A cache directory the user has
configured for JAX (``JAX_COMPILATION_CACHE_DIR``, ``jax.config``) is kept: XLA's entries go there.

Like JAX's, the cache is trusted (entries are deserialised executables and a pickle): it lives in
the user's own cache directory, created private; do not point it at a directory others can write.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

ENV_DIR = "GRADLANG_CACHE_DIR"
ENV_SWITCH = "GRADLANG_CACHE"
MAX_SIZE_BYTES = 1 << 30  # JAX evicts the least recently used executables above this (needs filelock)

_active: dict = {"dir": None, "off": False}  # the directory this process caches in, once enabled; whether
# the command line switched caching off (the parser's tables included)


def default_dir() -> Path:
    """``$GRADLANG_CACHE_DIR``, else ``$XDG_CACHE_HOME/gradlang/xla``, else ``~/.cache/gradlang/xla``."""
    if os.environ.get(ENV_DIR):
        return Path(os.environ[ENV_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "gradlang" / "xla"


def disabled_by_environment() -> bool:
    """``GRADLANG_CACHE=0`` (or false, no, off) turns the command line's cache off."""
    return os.environ.get(ENV_SWITCH, "").strip().lower() in {"0", "false", "no", "off"}


def active_dir() -> Path | None:
    """The directory this process caches in, or None when the cache is off."""
    return _active["dir"]


def parser_cache_file(grammar_text: str) -> str | None:
    """Where Lark keeps the parser's tables (None: nowhere).  The tables are the compiler's own,
    the same for every program, like Python's bytecode cache: building them costs a fresh process
    0.2 s of CPU, loading them 0.01 s.  So they are kept whenever the cache is not switched off
    (``GRADLANG_CACHE=0``, the command line's ``--no-cache``), the API's default included: in the
    compilation cache's directory when that is on, else in the default one (nowhere when it
    cannot be made).  The name carries a hash of the grammar and of the Lark and Python versions,
    so an edited grammar or an upgrade never meets an old file (a file that does not load is
    built again and rewritten)."""
    if _active["off"] or disabled_by_environment():
        return None
    folder = active_dir() or default_dir()
    try:
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError:
        return None
    if not os.access(folder, os.W_OK | os.X_OK):
        return None
    import hashlib
    import sys

    import lark

    key = f"{grammar_text}\0{lark.__version__}\0{sys.version_info[:2]}"
    return str(folder / f"gradlang-parser-{hashlib.sha256(key.encode('utf-8')).hexdigest()[:16]}.lark")


def use_compilation_cache(dir: str | Path | None = None, *,
                          min_compile_time_secs: float = 0.0) -> Path:
    """Keep compiled executables and the parser's tables on disk, so later processes load them.

    ``dir``: the cache directory (default: ``$GRADLANG_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/gradlang/xla``, else ``~/.cache/gradlang/xla``).  Sets JAX's global
    configuration (``jax_compilation_cache_dir``, ``jax_persistent_cache_min_compile_time_secs``
    lowered to ``min_compile_time_secs``, and a 1 GiB ``jax_compilation_cache_max_size`` when the
    ``filelock`` package is there for JAX's eviction), so every later compile of the process, on any
    thread, reads and writes it.  A cache directory already configured for JAX is kept, with its
    settings, and returned.  Call it before the first compile that should be cached.  Raises
    ``OSError`` when the directory cannot be made or written.

    Returns the directory XLA's executables go to.
    """
    import jax

    folder = Path(dir).expanduser() if dir is not None else default_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)  # private: entries are trusted code
    if not os.access(folder, os.W_OK | os.X_OK):  # else JAX warns at every executable it cannot write
        raise PermissionError(f"cannot write to the compilation cache directory {folder}")
    configured = jax.config.jax_compilation_cache_dir
    if configured and Path(configured) != folder and configured != str(_active["dir"]):
        if dir is not None:
            warnings.warn(f"JAX's compilation cache is already configured at {configured}; "
                          f"its executables go there, not to {folder}", stacklevel=2)
        _active["dir"] = folder
        return Path(configured)
    if configured and configured == str(_active["dir"]) and Path(configured) != folder:
        # our own earlier directory: JAX opens its cache once a process, so reopen it at the new one
        from jax.experimental.compilation_cache import compilation_cache

        compilation_cache.reset_cache()
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    if _has_filelock():
        jax.config.update("jax_compilation_cache_max_size", MAX_SIZE_BYTES)
    _active["dir"] = folder
    return folder


def _has_filelock() -> bool:
    """JAX's size cap needs ``filelock`` (without it, setting the cap makes the cache fail to open)."""
    try:
        import filelock  # noqa: F401
    except ImportError:
        return False
    return True


def for_command_line(no_cache: bool) -> Path | None:
    """The ``gradlang`` command's cache: on unless ``--no-cache`` or ``GRADLANG_CACHE=0``.  A
    directory that cannot be created turns it off with a note, never fails the run."""
    _active["off"] = bool(no_cache)
    if no_cache or disabled_by_environment():
        return None
    try:
        return use_compilation_cache()
    except OSError as err:
        import sys

        sys.stderr.write(f"note: compilation cache off ({err}); set {ENV_DIR} or pass --no-cache\n")
        return None
