"""docs/api.md's sections on people's accounts (``/api/v1/users``) and who acted, from the
live system that devtools.api_examples starts."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx

Show = Callable[..., None]


def people_examples(lines: list[str], show: Show, a: httpx.Client) -> None:
    """Create, read, list and change accounts (admin), their errors, and the change log."""
    a.post("/api/v1/factories", json={"name": "plant-3"})
    body: dict[str, Any] = {
        "name": "Anna",
        "role": "operator",
        "display": "Anna Berg",
        "factories": ["plant-3"],
    }
    show(
        lines,
        "Add a person (admin)",
        "POST",
        "/api/v1/users",
        a.post("/api/v1/users", json=body),
        f"Body: `{_compact(body)}`. Without a `password`, the answer carries a one-time "
        "`setup_link` (valid 24 h, shown this once; the hub keeps only its hash) where the "
        'person chooses their password; with `"password": "..."` it is set at once (the '
        "console's password rules apply: at least `[console] password_min_length` characters, "
        "not a common password). `factories` limits them to those factories (by name; empty: "
        "every factory). The password hash is never in an answer.",
    )
    show(
        lines,
        "A person's account (admin)",
        "GET",
        "/api/v1/users/ANNA",
        a.get("/api/v1/users/ANNA"),
        "Names are compared ignoring case and in Unicode NFC: `Anna`, `ANNA` and `anna` are "
        "one account.",
    )
    patch = {"role": "admin", "factories": [], "disabled": True}
    show(
        lines,
        "Change a person (admin)",
        "PATCH",
        "/api/v1/users/anna",
        a.patch("/api/v1/users/anna", json=patch),
        f"Body: `{_compact(patch)}`: any of `role`, `factories`, `display` and `disabled`. "
        "A disabled person cannot sign in; `edge-hub user unlock` and `user reset-password` "
        "do the rest from the command line.",
    )
    show(
        lines,
        "People (admin)",
        "GET",
        "/api/v1/users",
        a.get("/api/v1/users"),
        "Paged. An admin token limited to some factories gets 403 on every /users route: it "
        "could give an account any factory.",
    )
    show(
        lines,
        "A name taken in another case",
        "POST",
        "/api/v1/users",
        a.post("/api/v1/users", json={"name": "anna", "role": "read"}),
    )
    bad = {"name": "two words", "role": "root", "display": " Bo"}
    show(
        lines,
        "A bad account",
        "POST",
        "/api/v1/users",
        a.post("/api/v1/users", json=bad),
        f"Body: `{_compact(bad)}`. A name over 64 characters or with spaces or control "
        "characters, an unknown role, a display name over 128 characters or padded with "
        "spaces, an unknown factory: 422 naming each field, nothing stored. An unknown name "
        "in the path is 404.",
    )
    show(
        lines,
        "Who changed an account (admin)",
        "GET",
        "/api/v1/audit?target=user&target_id=Anna",
        a.get("/api/v1/audit", params={"target": "user", "target_id": "Anna"}),
        "`user.create`, `user.update` (each changed field from and to), `user.disable`, "
        "`user.enable`, `user.unlock` and `user.reset_password`, whether made here or with "
        '`edge-hub user ...` (then `by` is `{"kind": "system", "name": "cli", "display": '
        "<the login that ran it>}`).",
    )


def _compact(body: dict[str, Any]) -> str:
    return json.dumps(body, separators=(", ", ": "))
