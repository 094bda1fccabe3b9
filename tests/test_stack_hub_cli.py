"""devtools.stack.hub_cli runs ``edge-hub`` in this process: what it returns is the command's
own output, whatever other threads print meanwhile (the demo prints its live summary from one
thread while another makes the alarm story's tokens)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from devtools.stack import Hub


def test_other_threads_printing_do_not_end_up_in_a_token(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hub = Hub(tmp_path)
    stop = threading.Event()
    printed = threading.Event()

    def chatter() -> None:
        while not stop.is_set():
            print("live summary line")
            printed.set()

    thread = threading.Thread(target=chatter)
    thread.start()
    try:
        assert printed.wait(10)
        tokens = [hub.cli("token", "add", "--role", "read") for _ in range(5)]
    finally:
        stop.set()
        thread.join()
    assert all(t.startswith("fer_") and "\n" not in t and " " not in t for t in tokens), tokens
    assert len(set(tokens)) == 5
    # The other thread's lines went where it printed them.
    assert "live summary line" in capsys.readouterr().out
