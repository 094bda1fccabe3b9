"""Every command and subcommand answers ``--help`` with exit 0, and every subcommand and
option says what it does."""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.cli import build_parser as agent_parser
from agent.sim import build_parser as sim_parser
from devtools.stack import REPO, detector_binary
from hub.cli import build_parser as hub_parser

BIN = Path(sys.executable).parent

PROGRAMS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "edge-agent": agent_parser,
    "edge-hub": hub_parser,
    "edge-sim": sim_parser,
}


def _subcommands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _subcommands(sub, (*path, name))


def _undocumented(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            documented = {a.dest for a in action._choices_actions if a.help}
            missing += [f"command {n}" for n in action.choices if n not in documented]
        elif action.help is None and action.dest not in ("help",):
            missing.append(f"option {'/'.join(action.option_strings) or action.dest}")
    return missing


CASES = [(prog, path) for prog, build in PROGRAMS.items() for path, _ in _subcommands(build())]


@pytest.mark.parametrize(("prog", "path"), CASES, ids=[" ".join((p, *s)) for p, s in CASES])
def test_python_commands_help(prog: str, path: tuple[str, ...]) -> None:
    out = subprocess.run(
        [str(BIN / prog), *path, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("usage: "), out.stdout
    parser = dict(_subcommands(PROGRAMS[prog]()))[path]
    assert parser.description or path, f"{prog} has no description"
    assert not _undocumented(parser), f"{prog} {' '.join(path)}: {_undocumented(parser)}"


def test_anomaly_detector_help() -> None:
    out = subprocess.run(
        [str(detector_binary()), "--help"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert "--listen" in out.stdout and "Usage: anomaly-detector" in out.stdout
