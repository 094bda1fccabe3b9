"""docs/api.md's section on factory scopes, from the live system that devtools.api_examples
runs: a token limited to plant-1 beside a second factory it may not see.

Usage alone (a hub only): python -m devtools.api_examples_scopes   (prints the section)
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import httpx

from devtools.stack import Hub, stopping

Show = Callable[..., None]


def scope_examples(lines: list[str], show: Show, hub: Hub, a: httpx.Client) -> None:
    """A scoped token's list, another factory's id, a forged write, and creating a factory."""
    other = a.post("/api/v1/factories", json={"name": "plant-9", "location": "Porto"})
    fid = other.json()["data"]["id"]
    scoped = hub.cli("token", "add", "--role", "admin", "--factory", "plant-1")
    with hub.client(scoped) as s:
        show(
            lines,
            "A token limited to a factory: lists",
            "GET",
            "/api/v1/factories",
            s.get("/api/v1/factories"),
            "`edge-hub token add --role admin --factory plant-1` makes a token that sees "
            "plant-1 only: every list (gateways, factories, machines, sensors, alerts, the "
            "audit log) and the alarm report leave the other factories out, totals included. "
            f"Here plant-9 (id {fid}) exists, but not for this token.",
        )
        show(
            lines,
            "A token limited to a factory: another factory's id",
            "GET",
            f"/api/v1/factories/{fid}",
            s.get(f"/api/v1/factories/{fid}"),
            "The same 404 as for an id that does not exist, for anything of another factory "
            "(its gateways, machines, sensors, readings, alerts, rules, report), and for "
            "writes to it: nothing is changed.",
        )
        machine = {"factory_id": fid, "line": "l1", "name": "press9", "type": "press"}
        show(
            lines,
            "A token limited to a factory: a body naming another factory",
            "POST",
            "/api/v1/machines",
            s.post("/api/v1/machines", json=machine),
            "The 422 of a parent that does not exist; nothing is stored.",
        )
        show(
            lines,
            "A token limited to a factory: creating a factory",
            "POST",
            "/api/v1/factories",
            s.post("/api/v1/factories", json={"name": "plant-10", "location": ""}),
            "Only a token or person that sees every factory creates one.",
        )


def main() -> None:
    from devtools.api_examples import _show

    with tempfile.TemporaryDirectory() as tmp:
        hub = Hub(Path(tmp))
        hub.add_gateway("gw-01", "plant-1")
        admin = hub.cli("token", "add", "--role", "admin")
        hub.start()
        lines: list[str] = []
        with stopping(hub), hub.client(admin) as a:
            scope_examples(lines, _show, hub, a)
        print("\n".join(lines))


if __name__ == "__main__":
    main()
