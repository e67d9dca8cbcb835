"""Registries of one-word choices (optimizers, schedules, ...), each entry cited.

An entry registers itself with ``@REGISTRY.register("name", cite="...")``; ``get`` looks a name up
and raises a located ``ConfigError`` listing the known names (with the nearest one) when it is
unknown.  ``gradlang list KIND`` and the registry-driven tests read ``entries()``.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, choice_help
from .source import Span


@dataclass(frozen=True)
class Entry:
    name: str
    value: Callable[..., Any]
    cite: str
    kind: str

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.value) or ""
        return doc.splitlines()[0] if doc else ""


class Registry:
    def __init__(self, kind: str, package: str | None = None, by_file: bool = False):
        self.kind = kind
        self._package = package  # imported lazily so every entry file registers itself
        self._entries: dict[str, Entry] = {}
        self._loaded = package is None
        # every entry lives in a file named after it (and only there): a name without such a file
        # is not an entry, known without importing the package (tests/test_solvers.py checks it)
        self.by_file = by_file
        self._absent: set[str] = set()  # names a by_file registry has no file for (looked up once)

    def register(self, name: str, cite: str = ""):
        def decorate(fn):
            self._entries[name] = Entry(name, fn, cite, self.kind)
            return fn

        return decorate

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        pkg = importlib.import_module(self._package)
        for info in pkgutil.iter_modules(pkg.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def _find(self, name: str) -> bool:
        """Whether ``name`` is registered.  Before the package is loaded, the entry's own file
        (``package/name.py``: entries live in files named after them) is imported first, and
        only a name not found there loads the whole package, unless the registry is ``by_file``
        (then the name is not an entry): a run that names one solver or prox does not import the
        other sixty-odd entry files (40-60 ms of a first fit), nor does asking whether ``mean``
        has a prox import every prox."""
        if name in self._entries:
            return True
        if name in self._absent:
            return False
        if not self._loaded and name.isidentifier() and not name.startswith("_"):
            module = f"{self._package}.{name}"
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as err:
                if err.name != module:  # the entry file's own import failed: not ours to hide
                    raise
                if self.by_file:
                    self._absent.add(name)
                    return False
            if name in self._entries or self.by_file:
                return name in self._entries
        self._load()
        return name in self._entries

    def names(self) -> list[str]:
        self._load()
        return sorted(self._entries)

    def entries(self) -> list[Entry]:
        self._load()
        return [self._entries[n] for n in sorted(self._entries)]

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and self._find(name)

    def build(self, cfg, what: str | None = None, listing: str | None = None):
        """The entry a setting names (``upgrad``, ``implicit(solver = cg)``: an ``ir.ConfigValue``)
        called with its arguments; an unknown name or a wrong argument is a located error that
        says where the arguments are listed."""
        from .check.config_value import config_args

        factory = self.get(cfg.value, cfg.span).value
        args, kwargs = config_args(cfg)
        try:
            return factory(*args, **kwargs)
        except (TypeError, ValueError, ConfigError) as err:
            message = err.diagnostics[0].message if isinstance(err, ConfigError) else str(err)
            raise ConfigError(f"wrong arguments to {what or self.kind} {cfg.value}: {message}", cfg.span,
                              f"`gradlang list {listing or self.kind + 's'}` shows each one's arguments") from None

    def get(self, name: str, span: Span | None = None) -> Entry:
        if not (isinstance(name, str) and self._find(name)):
            self._load()  # the hint lists every entry
            raise ConfigError(f"unknown {self.kind} '{name}'", span, choice_help(name, self._entries))
        return self._entries[name]
