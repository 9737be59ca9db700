"""Arrays kept from call to call for the hand-written backwards (`mine`, `gru`).

A fresh array of the size these computations use (tens to hundreds of MB) costs more to
fault into memory than the arithmetic done on it (transparent huge pages are `madvise`-only
on the machines measured), so each computation keeps its arrays. A forward takes a `Lease`
on them and hands it to the autograd graph; while a graph still holds the lease, the next
forward gets new arrays instead of overwriting ones a pending backward needs.
"""
from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable
from typing import Any


class Lease:
    """Held by the autograd graph of one forward: while it lives, its arrays are in use."""


class Workspace:
    """One set of arrays, made by `make()` and kept while `key` (shapes, dtypes, device, …)
    stays the same."""

    def __init__(self) -> None:
        self._arrays: Any = None
        self._key: Hashable = None
        self._lease: weakref.ref | None = None

    def take(self, key: Hashable, make: Callable[[], Any]) -> tuple[Any, Lease]:
        """The kept arrays (new ones when the key changed or a live lease holds them) and a
        new lease on them; keep the lease as long as the arrays are in use."""
        lease = Lease()
        if self._lease is not None and self._lease() is not None:
            return make(), lease
        if self._arrays is None or self._key != key:
            self._arrays, self._key = make(), key
        self._lease = weakref.ref(lease)
        return self._arrays, lease
