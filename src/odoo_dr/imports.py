"""Modules imported on first use, so that commands which never need them start
faster."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class LazyModule(ModuleType):
    """A stand-in for a module that imports it when one of its attributes is first
    read.

    Every command line starts by importing every command's modules, and some
    libraries (redis-py) take a tenth of a second to import. The import system's
    own locks make the first use from several threads safe.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self.__name__), attribute)


def lazy_module(name: str) -> ModuleType:
    """Return a stand-in for module `name` that imports it on first use."""
    return LazyModule(name)
