"""Stale/fresh marks waiting to reach the hub, kept in the buffer's state table so that an
NDEATH acknowledged to the broker is not forgotten by a restart before the next sync.

Per sensor key only the latest mark counts (a birth after a death makes the death moot).
The sync sends every pending mark with each batch (:meth:`MarkStore.pending`) and, once the
hub answered 2xx, forgets those that did not change meanwhile (:meth:`MarkStore.acked`); the
hub keeps the mark with the latest ``at`` per sensor, so a mark sent twice is harmless.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Sequence
from typing import Protocol

from agent.sparkplug.session import Mark
from shared.wire import WireMark

STATE_KEY = "sparkplug_marks"


class _StateStore(Protocol):
    def state(self) -> dict[str, str]: ...

    def set_state(self, **items: object) -> None: ...


class MarkStore:
    def __init__(self, store: _StateStore) -> None:
        self._store = store
        self._lock = threading.Lock()  # pending() runs in the sync's worker thread
        self._marks: dict[str, tuple[bool, float]] = {}
        raw = store.state().get(STATE_KEY)
        if raw:
            for key, stale, at in json.loads(raw):
                self._marks[str(key)] = (bool(stale), float(at))

    def __len__(self) -> int:
        return len(self._marks)

    def add(self, marks: Iterable[Mark]) -> None:
        with self._lock:
            changed = False
            for mark in marks:
                for key in mark.keys:
                    old = self._marks.get(key)
                    if old is None or old[1] <= mark.at:
                        self._marks[key] = (mark.stale, mark.at)
                        changed = True
            if changed:
                self._save()

    def pending(self) -> list[WireMark]:
        with self._lock:
            return [WireMark(k, stale, at) for k, (stale, at) in self._marks.items()]

    def acked(self, sent: Sequence[WireMark]) -> None:
        with self._lock:
            before = len(self._marks)
            for m in sent:
                if self._marks.get(m.key) == (m.stale, m.at):
                    del self._marks[m.key]
            if len(self._marks) != before:
                self._save()

    def _save(self) -> None:
        rows = [[k, stale, at] for k, (stale, at) in self._marks.items()]
        self._store.set_state(**{STATE_KEY: json.dumps(rows)})
