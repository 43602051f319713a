"""Run a function right after a module is imported, without importing it: how ``import batchframe`` registers
``ddf.batch`` when Dask is installed, whether ``dask.dataframe`` is imported before or after it.

Importing ``dask.dataframe`` takes one to two seconds, which ``import batchframe`` (and every ``batchframe``
command) must not pay when Dask is never used. So the hook is a finder placed first on ``sys.meta_path``: for
the one module it waits for, it finds the real spec and wraps its loader, so the function runs once the
module's own code has run; then it removes itself. A module already imported runs the function at once.

Examples
--------
>>> calls = []
>>> when_imported("json", lambda: calls.append("json"))  # imported already: runs now
>>> calls
['json']
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
import threading
import warnings
from collections.abc import Callable
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any


def when_imported(name: str, then: Callable[[], None]) -> None:
    """Call ``then()`` once module ``name`` is imported (now, if it is already)."""
    if name in sys.modules:
        then()
    else:
        sys.meta_path.insert(0, _Waiting(name, then))


class _Waiting(importlib.abc.MetaPathFinder):
    """Waits for one module; finding it, leaves ``sys.meta_path`` and hands back the real spec, wrapped."""

    def __init__(self, name: str, then: Callable[[], None]):
        self._name, self._then = name, then
        self._lock = threading.Lock()

    def find_spec(self, fullname: str, path: Any = None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname != self._name:
            return None
        with self._lock:
            if self not in sys.meta_path:
                return None  # another thread is importing it through this finder already
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)  # the finders after this one, as the import would have asked
        if spec is not None and spec.loader is not None:
            spec.loader = _Then(spec.loader, self._then)
        return spec


class _Then(importlib.abc.Loader):
    """The real loader, then ``then()``; the module keeps the real loader (resources are read through it)."""

    def __init__(self, loader: Any, then: Callable[[], None]):
        self._loader, self._then = loader, then

    def create_module(self, spec: ModuleSpec) -> ModuleType | None:
        return self._loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        module.__loader__ = self._loader
        if module.__spec__ is not None:
            module.__spec__.loader = self._loader
        try:
            self._then()
        except Exception as exc:  # a failed registration must never break the user's own import
            warnings.warn(f"batchframe could not register after importing {module.__name__}: {exc!r}",
                          ImportWarning, stacklevel=2)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)
