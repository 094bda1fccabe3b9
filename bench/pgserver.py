"""The benchmarks' PostgreSQL server: a durable one, unlike the tests' (tests/pg.py)."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from devtools.stack import free_port


class PgBenchServer:
    """A PostgreSQL server for the bench, as the postgres user in a temp dir on a free port,
    with durable settings (fsync, synchronous_commit on): figures with fsync off would
    promise what no plant runs. tests/pg.py's server turns durability off for speed."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="edge-bench-pg-"))
        self.data = self.root / "data"
        self.as_postgres = os.geteuid() == 0
        self.user = "postgres" if self.as_postgres else pwd.getpwuid(os.geteuid()).pw_name

    def _run(self, *argv: str) -> None:
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if self.as_postgres:  # PostgreSQL refuses to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)

    def start(self) -> PgBenchServer:
        if self.as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8")
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 "
            f"-c unix_socket_directories={self.root} -c max_connections=200 "
            "-c shared_buffers=256MB -c max_wal_size=4GB"
        )
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", options, "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def postmaster_pid(self) -> int:
        """The server's main process: its children are the backends and background workers."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        with contextlib.suppress(subprocess.SubprocessError):
            self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def copy_readings(conn: Any, rows: Iterable[tuple[int, int, float, float, int, int]]) -> None:
    """One transaction of binary COPY straight into the hub's ``readings``: the rows as
    (id, sensor_id, ts, value, gateway_id, seq). The PostgreSQL rows' raw-insert ceiling."""
    with (
        conn.transaction(),
        conn.cursor().copy(
            "COPY readings (id, sensor_id, ts, value, gateway_id, seq) FROM STDIN (FORMAT BINARY)"
        ) as copy,
    ):
        copy.set_types(["int8", "int8", "float8", "float8", "int8", "int8"])
        for row in rows:
            copy.write_row(row)
