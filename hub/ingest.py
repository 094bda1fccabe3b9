"""POST /api/v1/ingest: decode -> authorize -> store idempotently, all or nothing."""

from __future__ import annotations

from hub.auth import Principal
from hub.errors import ApiError, forbidden
from hub.metrics import INGEST_READINGS
from hub.storage import GatewayReport, Storage
from shared.payload import NO_WINDOW, TsWindow
from shared.wire import IngestResult, WireError, decode_batch


def body_bytes(body: str | bytes | None) -> bytes:
    """Robyn hands over a body that is valid UTF-8 as str, anything else (gzip) as bytes."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def ingest(
    storage: Storage,
    principal: Principal,
    body: bytes,
    content_encoding: str | None,
    *,
    max_body_bytes: int,
    max_decompressed_bytes: int,
    window: TsWindow = NO_WINDOW,
) -> IngestResult:
    """Apply one sync batch for ``principal`` (a gateway token), or raise ApiError.

    Every check happens before the one write transaction, so a rejected batch leaves no
    trace: not a reading, not a sensor, not a last_seen.
    """
    if len(body) > max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"request body exceeds {max_body_bytes} bytes",
            [{"field": "body", "message": f"{len(body)} bytes > {max_body_bytes}"}],
        )
    try:
        batch = decode_batch(
            body, content_encoding, max_decompressed=max_decompressed_bytes, window=window
        )
    except WireError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None
    if principal.gateway_id is None or principal.factory_id is None:
        raise forbidden("only gateway tokens may ingest")
    if batch.gateway_id != principal.gateway_name:
        raise forbidden(
            f"this token belongs to gateway {principal.gateway_name!r}, "
            f"the batch names {batch.gateway_id!r}"
        )
    result = storage.store_batch(
        principal.gateway_id,
        principal.factory_id,
        batch.readings,
        GatewayReport(
            backlog=batch.backlog,
            dropped=batch.dropped,
            dead_letters=batch.dead_letters,
            agent_version=batch.agent_version[:64],
        ),
        batch.alerts,
    )
    INGEST_READINGS.labels("accepted").inc(result.accepted)
    INGEST_READINGS.labels("duplicate").inc(result.duplicates)
    return IngestResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        config_version=result.config_version,
    )
