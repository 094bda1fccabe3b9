"""A real PostgreSQL server for the tests: Debian's postgresql package, started by the tests.

One server per test session (initdb once: ~1 s), in a temp dir, on a free port of 127.0.0.1,
as the ``postgres`` user (PostgreSQL refuses to run as root). Each test gets a fresh database
made with ``CREATE DATABASE ... TEMPLATE`` (milliseconds). Durability settings are off: the
tests prove behaviour, not crash safety of the server itself.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

import psutil
import psycopg

# The newest installed major version, e.g. /usr/lib/postgresql/15/bin.
_BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def bin_dir() -> Path | None:
    return Path(_BIN_DIRS[-1]) if _BIN_DIRS else None


class PgServer:
    """``initdb`` + ``pg_ctl start`` in a temp dir; :meth:`stop` removes it all."""

    def __init__(self, *, commit_waits_for_wal: bool = False, passwords: bool = False) -> None:
        """``commit_waits_for_wal``: a commit is confirmed only once its WAL is written, so
        that it survives :meth:`kill9` (a crash of the server, not of the machine: fsync
        stays off). ``passwords``: roles other than the superuser log in over TCP with their
        SCRAM password (the superuser, as the tests' hub, still without one)."""
        self.commit_waits_for_wal = commit_waits_for_wal
        self.passwords = passwords
        found = bin_dir()
        if found is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin "
                "(apt-get install postgresql; .ci/run does)"
            )
        self.bin = found
        self.port = _free_port()
        # Not under pytest's tmp dir: that is root's, 0700, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="edge-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self._ids = itertools.count(1)
        self._as_postgres = os.geteuid() == 0
        self.user = "postgres" if self._as_postgres else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            log = self.log.read_text() if self.log.exists() else ""
            raise RuntimeError(f"{' '.join(argv[:2])} failed: {result.stderr}{result.stdout}{log}")

    def start(self) -> PgServer:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        if self.passwords:
            hba = self.data / "pg_hba.conf"
            hba.write_text(
                "local all all trust\n"
                f"host all {self.user} 127.0.0.1/32 trust\n"
                "host all all 127.0.0.1/32 scram-sha-256\n"
            )
        self._options = " ".join(
            [
                f"-p {self.port}",
                "-c listen_addresses=127.0.0.1",
                f"-c unix_socket_directories={self.root}",
                "-c fsync=off",
                f"-c synchronous_commit={'on' if self.commit_waits_for_wal else 'off'}",
                "-c full_page_writes=off",
                "-c max_connections=200",
            ]
        )
        return self.restart()

    def restart(self) -> PgServer:
        """Start the server of this data directory again (after :meth:`kill9`: crash recovery)."""
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", self._options, "-w", "start"
        )
        return self

    def kill9(self) -> None:
        """SIGKILL the postmaster and every backend of it: the server's host lost power."""
        postmaster = psutil.Process(int((self.data / "postmaster.pid").read_text().split()[0]))
        backends = postmaster.children(recursive=True)
        for proc in [postmaster, *backends]:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs([postmaster, *backends], timeout=10)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, template: str = "template1") -> str:
        """A new empty database; returns its URL."""
        name = f"t{os.getpid()}_{next(self._ids)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return self.url(name)

    def stop(self) -> None:
        with contextlib.suppress(RuntimeError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
