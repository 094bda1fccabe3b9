# factory-edge task runner. `just demo` and `just test` work from a fresh clone:
# they create .venv, build the Rust parts and install everything they need.

set shell := ["bash", "-euo", "pipefail", "-c"]

python := env_var_or_default("PYTHON", "python3")
venv := ".venv"
bin := venv / "bin"

default:
    @just --list

# Create .venv and (re)build the package + native module when sources changed.
venv:
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -x {{bin}}/python ]; then
        {{python}} -c 'import sys; assert sys.version_info >= (3, 11), "Python >= 3.11 is required"'
        {{python}} -m venv {{venv}}
        {{bin}}/pip install -q --upgrade pip
    fi
    stamp={{venv}}/.factory-edge-stamp
    if [ ! -f "$stamp" ] || [ -n "$(find pyproject.toml Cargo.toml crates/threshold-checker -newer "$stamp" -type f 2>/dev/null | head -1)" ]; then
        echo "==> installing factory-edge into {{venv}} (builds the threshold_checker module)"
        {{bin}}/pip install -q -e '.[dev,demo]'
        touch "$stamp"
    fi

# Build the Rust binaries (anomaly-detector) and the Python package.
build: venv
    cargo build --release -p anomaly-detector -p edge-load

# The system packages the tests need (mosquitto, nginx, chromium, PostgreSQL, systemd): installed
# when missing as root with apt-get, else one line naming the command to run, before any build.
test-deps:
    bash devtools/test-deps.sh

# Every test: cargo tests for the crates, then pytest (unit, integration, fault) in two worker
# processes: most of the suite's time is waiting on the real processes it starts.
test: test-deps build
    cargo test --workspace --release
    {{bin}}/pytest -q -n 2 --durations=15 {{ if env_var_or_default("CI", "") != "" { "-p no:cacheprovider" } else { "" } }}

# wrk, the HTTP load generator of the anomaly rows, is installed when missing and we are root;
# without it those rows fall back to Python client threads and say so.
# Benchmarks: prints a table and writes bench/results.json; `just bench --only NAME` runs one row.
bench *ARGS: build
    #!/usr/bin/env bash
    set -euo pipefail
    if ! command -v wrk >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get install -y -qq wrk >/dev/null || echo "could not install wrk; the anomaly rows use Python clients"
    fi
    {{bin}}/python -m bench {{ARGS}}

# The whole system on this machine: broker, anomaly-detector, hub, agent, simulated sensors.
demo: build
    {{bin}}/python -m devtools.demo

# The .pyi stubs are checked against the module venv just built (a renamed argument or a method
# missing from the stubs fails stubtest).
# Lint: ruff, mypy, the import layers (import-linter), stubtest of the native module's stubs,
# clippy, rustfmt.
lint: venv
    {{bin}}/ruff check .
    {{bin}}/ruff format --check .
    {{bin}}/mypy
    {{bin}}/lint-imports
    {{bin}}/python -m mypy.stubtest threshold_checker._native
    cargo clippy --workspace --all-targets -- -D warnings
    cargo fmt --all -- --check

fmt: venv
    {{bin}}/ruff format .
    {{bin}}/ruff check --fix .
    cargo fmt --all

clean:
    cargo clean
    rm -rf {{venv}} .pytest_cache .mypy_cache .ruff_cache .hypothesis .demo
    find . -name __pycache__ -type d -prune -exec rm -rf {} +
