"""devtools/test-deps.sh, the first step of `just test`: it installs the tests' system packages
as root with apt-get, and otherwise stops with one line naming the command to run.

Each case runs the real script with a search path that lacks some of the tools, so "missing"
is real to the script; apt-get and systemctl are stand-ins on PATH that record their arguments.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from devtools.stack import REPO

SCRIPT = REPO / "devtools" / "test-deps.sh"
ALL_TOOLS = [
    "mosquitto",
    "mosquitto_pub",
    "mosquitto_passwd",
    "systemd-analyze",
    "nginx",
    "chromium",
    "haproxy",
    "etcd",
]


def fake_tools(tmp_path: Path, present: list[str], with_initdb: bool) -> tuple[Path, Path]:
    """A directory holding executables named like the present tools, and a PostgreSQL lib dir."""
    tools = tmp_path / "tools"
    tools.mkdir()
    for name in present:
        exe = tools / name
        exe.write_text("#!/bin/sh\nexit 0\n")
        exe.chmod(0o755)
    pglib = tmp_path / "pglib"
    if with_initdb:
        (pglib / "15" / "bin").mkdir(parents=True)
        (pglib / "15" / "bin" / "initdb").write_text("")
    return tools, pglib


def recorder(tmp_path: Path) -> tuple[Path, Path]:
    """Stand-ins for apt-get and systemctl that append their arguments to a log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.log"
    for name in ("apt-get", "systemctl", "pg_ctlcluster"):
        exe = bin_dir / name
        exe.write_text(f'#!/bin/sh\necho "{name} $*" >> {log}\n')
        exe.chmod(0o755)
    return bin_dir, log


def fake_python(tmp_path: Path, log: Path, has_venv: bool) -> Path:
    """A stand-in for the system python: `-c 'import ensurepip'` answers whether
    python3-venv is there, `-m venv DIR` makes DIR/bin/pip, which records its arguments."""
    exe = tmp_path / "python3"
    exe.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = -c ]; then exit {0 if has_venv else 1}; fi\n'
        f'echo "python3 $*" >> {log}\n'
        'mkdir -p "$3/bin"\n'
        f'printf \'#!/bin/sh\\necho "pip $*" >> {log}\\n\' > "$3/bin/pip"\n'
        'chmod 700 "$3/bin/pip"\n'
    )
    exe.chmod(0o755)
    return exe


def patroni_venv(tmp_path: Path, present: bool) -> Path:
    venv = tmp_path / "patroni"
    if present:
        (venv / "bin").mkdir(parents=True)
        (venv / "bin" / "patroni").write_text("#!/bin/sh\n")
        (venv / "bin" / "patroni").chmod(0o755)
    return venv


def run(
    tools: Path,
    pglib: Path,
    bin_dir: Path,
    as_user: str | None = None,
    venv: Path | None = None,
    python: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    if venv is None:  # Patroni's venv is there unless a test says otherwise
        venv = patroni_venv(bin_dir.parent, present=True)
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "TEST_DEPS_PATH": str(tools),
        "TEST_DEPS_PGLIB": str(pglib),
        "TEST_DEPS_PATRONI_VENV": str(venv),
        "TEST_DEPS_PYTHON": str(python or "/usr/bin/python3"),
    }
    cmd = ["bash", str(SCRIPT)]
    if as_user is not None:
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        cmd = [runuser, "-u", as_user, "--", "env", *(f"{k}={v}" for k, v in env.items()), *cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)


def test_nothing_to_do_when_every_tool_is_there(tmp_path: Path) -> None:
    tools, pglib = fake_tools(tmp_path, ALL_TOOLS, with_initdb=True)
    bin_dir, log = recorder(tmp_path)
    done = run(tools, pglib, bin_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and done.stderr == ""
    assert not log.exists(), "nothing is installed or stopped when nothing is missing"


def test_root_installs_exactly_the_missing_packages_and_stops_their_services(
    tmp_path: Path,
) -> None:
    assert os.geteuid() == 0, "the suite runs as root, as CI does"
    present = [t for t in ALL_TOOLS if t not in ("nginx", "mosquitto_pub")]
    tools, pglib = fake_tools(tmp_path, present, with_initdb=False)
    bin_dir, log = recorder(tmp_path)
    done = run(tools, pglib, bin_dir)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert "apt-get update -qq" in calls
    assert "apt-get install -y -qq mosquitto-clients nginx postgresql" in calls
    assert "systemctl stop nginx" in calls and "systemctl stop postgresql" in calls


def test_root_installs_etcd_and_makes_patroni_a_venv_the_postgres_user_can_run(
    tmp_path: Path,
) -> None:
    tools, pglib = fake_tools(tmp_path, [t for t in ALL_TOOLS if t != "etcd"], with_initdb=True)
    bin_dir, log = recorder(tmp_path)
    venv = patroni_venv(tmp_path, present=False)
    python = fake_python(tmp_path, log, has_venv=False)
    done = run(tools, pglib, bin_dir, venv=venv, python=python)
    assert done.returncode == 0, done.stderr
    calls = log.read_text().splitlines()
    assert "apt-get install -y -qq etcd-server python3-venv" in calls
    assert "systemctl stop etcd" in calls  # Debian's unit, started by the package
    assert f"python3 -m venv {venv}" in calls
    assert "pip install -q patroni[etcd3]==4.1.5 psycopg2-binary==2.9.13" in calls
    pip = venv / "bin" / "pip"
    assert pip.stat().st_mode & 0o005 == 0o005, "others (postgres) may read and run it"


def test_without_root_it_names_the_command_and_builds_nothing() -> None:
    # pytest's tmp_path sits under a root-only directory; the unprivileged user must read this.
    with tempfile.TemporaryDirectory(prefix="fe-test-deps-") as name:
        base = Path(name)
        base.chmod(0o755)
        tools, pglib = fake_tools(base, [t for t in ALL_TOOLS if t != "chromium"], with_initdb=True)
        bin_dir, log = recorder(base)
        done = run(tools, pglib, bin_dir, as_user="nobody")
        calls = log.exists()
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "just test needs system packages; run first: sudo apt-get install -y chromium"
    ]
    assert not calls, "an unprivileged run calls no package manager"


def test_just_test_runs_the_check_before_building() -> None:
    """The recipe order is the promise: test-deps first, then the build."""
    recipe = next(
        line for line in (REPO / "justfile").read_text().splitlines() if line.startswith("test:")
    )
    assert recipe.split()[1:3] == ["test-deps", "build"]
