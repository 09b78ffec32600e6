"""Name -> implementation, one registry per extension point (methods, datasets).

Built-in implementations register with the `register` decorator. Out-of-tree ones are
installed packages that declare an entry point (`load_entry_points`):

    [project.entry-points."metabench.methods"]
    mymethod = "mypackage.mymodule:MyMethod"

The entry point's name is the registry name; its object is registered under it (a module
that registers itself on import works too). A plugin that fails to load does not stop
metabench: its error is kept and shown when its name is looked up (and by `metabench list`).
A lookup of an unknown name raises MetabenchError with close matches ("did you mean").
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Callable, Iterator
from importlib import metadata
from typing import Generic, TypeVar

from bench.errors import MetabenchError

T = TypeVar("T")


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | set[str]) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=3, cutoff=0.5)
    return f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""


class Registry(Generic[T]):
    """A named collection of implementations, filled by the `register` decorator."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self.broken: dict[str, str] = {}  # plugin name -> why it did not load
        self.origin: dict[str, str] = {}  # plugin name -> "distribution: module:attr"

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def load_entry_points(self, group: str) -> None:
        """Register every installed entry point of `group` not registered yet."""
        for ep in metadata.entry_points(group=group):
            if ep.name in self._items or ep.name in self.broken:
                continue
            dist = getattr(ep.dist, "name", None) or "?"
            self.origin[ep.name] = f"{dist}: {ep.value}"
            try:
                item = ep.load()
            except Exception as e:  # a broken plugin must not stop the other names
                self.broken[ep.name] = (
                    f"entry point {ep.value!r} of {dist} failed to load: "
                    f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                )
                continue
            if ep.name not in self._items and not isinstance(item, types.ModuleType):
                self._items[ep.name] = item

    def get(self, name: str, where: str = "") -> T:
        try:
            return self._items[name]
        except KeyError:
            prefix = f"{where}: " if where else ""
            if name in self.broken:
                raise MetabenchError(f"{prefix}{self.kind} {name!r}: {self.broken[name]}") from None
            raise MetabenchError(
                f"{prefix}unknown {self.kind} {name!r}{did_you_mean(name, self._items)}; "
                f"known: {', '.join(sorted(self._items))}"
            ) from None

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())
