"""The error envelope of every hub API answer that is not 2xx: both sides' one definition.

::

    {"error": {"code": "validation_error", "message": "2 problem(s) in batch",
               "details": [{"seq": 1002, "field": "ts", "message": "..."}, ...]},
     "meta": {"request_id": "req_...", "timestamp": "..."}}

``code`` is stable (clients branch on it), ``message`` is for people, ``details`` names each
culprit: a 422 on ``/api/v1/ingest`` names readings by ``seq`` and alerts by ``alert_id``,
so the agent can set exactly those aside and send the rest again (agent/sync.py).
The hub builds it (hub/errors.py), the agent reads it; neither spells the keys itself.
"""

from __future__ import annotations

from typing import Any

import msgspec


class ErrorBody(msgspec.Struct, frozen=True):
    code: str = ""
    message: str = ""
    # Per-culprit objects; their keys depend on the endpoint (seq, alert_id, field, param...).
    details: list[dict[str, Any]] = []

    def seqs(self) -> dict[int, list[dict[str, Any]]]:
        """The details that name a reading, by its seq."""
        named: dict[int, list[dict[str, Any]]] = {}
        for d in self.details:
            seq = d.get("seq")
            if isinstance(seq, int) and not isinstance(seq, bool):
                named.setdefault(seq, []).append(d)
        return named

    def alert_ids(self) -> set[object]:
        """The ``alert_id`` of every detail that names one."""
        return {d["alert_id"] for d in self.details if "alert_id" in d}

    def alerts(self) -> dict[int, list[dict[str, Any]]]:
        """The details that name an alert, by its ``alert_id``."""
        named: dict[int, list[dict[str, Any]]] = {}
        for d in self.details:
            alert_id = d.get("alert_id")
            if isinstance(alert_id, int) and not isinstance(alert_id, bool):
                named.setdefault(alert_id, []).append(d)
        return named


class ErrorEnvelope(msgspec.Struct, frozen=True):
    error: ErrorBody
    meta: dict[str, Any] = {}


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(ErrorEnvelope).decode


def encode_error(error: ErrorBody, meta: dict[str, Any]) -> bytes:
    return _encode(ErrorEnvelope(error, meta))


def decode_error(body: bytes) -> ErrorBody | None:
    """The error of an envelope, or None when ``body`` is not one (a proxy's HTML page,
    a truncated answer): the caller then falls back to the raw text."""
    try:
        return _decode(body).error
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
