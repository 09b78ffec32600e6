"""Name -> implementation, one registry per extension point (methods, datasets, meters).

A lookup of an unknown name raises MetabenchError with close matches ("did you mean").
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterator
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

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = item
            return item

        return add

    def get(self, name: str, where: str = "") -> T:
        try:
            return self._items[name]
        except KeyError:
            prefix = f"{where}: " if where else ""
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
