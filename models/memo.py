"""One small bounded memo for the process-wide caches of the speed-ups (bench/README.md lists them).

Lives in models/ because every package may import it (arrows point down). A memo remembers what
`compute` gave for a key, up to `size` entries, and forgets everything when full: the caches hold a
few entries per step or meeting, so a clear now and then costs little and needs no bookkeeping.
Every memo is registered by its name, so tests can empty them and the README can list them.
"""

from typing import Any, Callable

_MISSING = object()
_ALL: dict[str, "Memo"] = {}


class Memo:
    def __init__(self, name: str, size: int):
        self.name = name
        self.size = size  # entries kept; cleared when full
        self._entries: dict = {}
        _ALL[name] = self

    def get(self, key, compute: Callable[[], Any]) -> Any:
        """The remembered value for key, else compute() remembered (None too). An unhashable key
        raises TypeError before compute is called; an exception from compute is not remembered."""
        found = self._entries.get(key, _MISSING)
        if found is _MISSING:
            found = compute()
            if len(self._entries) >= self.size:
                self._entries.clear()
            self._entries[key] = found
        return found

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key) -> bool:
        return key in self._entries

    def __getitem__(self, key):
        return self._entries[key]

    def clear(self) -> None:
        self._entries.clear()

    def __repr__(self) -> str:
        return f"Memo({self.name!r}, size={self.size}, holding {len(self._entries)})"


def memos() -> list[Memo]:
    """Every memo created so far (those of the modules imported), in creation order."""
    return list(_ALL.values())


def clear_all() -> None:
    for memo in _ALL.values():
        memo.clear()
