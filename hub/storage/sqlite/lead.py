"""Leadership among hub processes on one SQLite database: an flock on a file beside it.

Not a lock on the database file itself: closing any descriptor of that file would drop the
POSIX locks SQLite holds on it in this process."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator

from hub.storage.model import StorageError
from hub.storage.sqlite.pool import make_private


@contextlib.contextmanager
def migration_lock(path: str) -> Iterator[None]:
    """Held while one process migrates ``path``; the others wait here, however long the
    migration takes (SQLite's own busy timeout would give up after seconds), then find
    nothing left to do."""
    try:
        make_private(path)  # the directory, and the file for the owner alone
        fd = os.open(f"{path}.migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise StorageError(f"cannot open database {path}: {exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class FileLeads:
    """The jobs this process leads, each held by an flock on ``<database>.<job>.lock``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fds: dict[str, int] = {}

    def try_lead(self, job: str) -> bool:
        if job in self._fds:
            return True
        fd = os.open(f"{self.path}.{job}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._fds[job] = fd
        return True

    def release_leads(self) -> None:
        fds, self._fds = self._fds, {}
        for fd in fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)  # closing the descriptor releases its flock
