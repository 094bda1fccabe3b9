"""POST /api/v1/ingest: decode -> check -> authorize -> store idempotently, all or nothing."""

from __future__ import annotations

import time
from typing import Any

import structlog
from msgspec.structs import replace

from hub import alert_clears, batchcheck
from hub.auth import Principal
from hub.batchcheck import SensorLimits
from hub.errors import ApiError, forbidden, unauthorized
from hub.metrics import INGEST_READINGS, SENSOR_LIMIT_REFUSALS
from hub.storage import GatewayReport, Storage, TokenRevoked
from shared.payload import NO_WINDOW, TsWindow
from shared.text import is_nfc, nfc
from shared.wire import Batch, IngestResult, WireError, decode_batch

log = structlog.get_logger("hub.ingest")

# Generous enough for any real deployment; a cap that a test may lower.
NO_SENSOR_LIMITS = SensorLimits(per_batch=1_000_000, per_factory=10_000_000)


def body_bytes(body: str | bytes | None) -> bytes:
    """Robyn hands over a body that is valid UTF-8 as str, anything else (gzip) as bytes."""
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    return bytes(body)


def _invalid(problems: list[dict[str, Any]]) -> ApiError:
    return ApiError(422, "validation_error", f"{len(problems)} problem(s) in batch", problems)


def decode(
    body: bytes, content_encoding: str | None, *, max_decompressed_bytes: int, window: TsWindow
) -> tuple[Batch, dict[int, list[dict[str, Any]]]]:
    """The batch in ``body``, checked by shared.wire and hub.batchcheck, or ApiError; with
    the problems of the clears that stand only if the hub does not hold their alert active
    (hub.alert_clears), by alert id."""
    try:
        batch = decode_batch(
            body, content_encoding, max_decompressed=max_decompressed_bytes, window=window
        )
    except WireError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from None
    except RecursionError:
        # msgspec gives up on JSON nested past its depth limit (an unknown field holding
        # [[[[...]]]] 50,000 deep): malformed input, not a server fault.
        raise ApiError(400, "invalid_json", "body is not valid JSON: nested too deeply") from None
    batch = nfc_keys(batch)
    problems = batchcheck.report_problems(batch) + batchcheck.reading_problems(batch)
    standing, clears = alert_clears.split(
        batch, batchcheck.alert_problems(batch, window, time.time())
    )
    problems += standing
    problems += batchcheck.mark_problems(batch, window, time.time())
    if problems and not clears:
        raise _invalid(problems)
    return batch, clears


def reconcile_clears(
    storage: Storage, gateway_id: int, batch: Batch, clears: dict[int, list[dict[str, Any]]]
) -> Batch:
    """``batch`` with the clears of alerts the hub holds active made storable (the others
    are left as they came, problems and all)."""
    held = storage.active_edge_alerts(gateway_id, sorted(clears))
    if held:
        log.info(
            "applying clears whose opening fields fail a check",
            alert_ids=",".join(str(i) for i in sorted(held)),
        )
    return alert_clears.apply(batch, held, clears, time.time())


def _log_refusal(err: ApiError, gateway: str | None) -> None:
    """Each problem of a refused batch, so the hub's log says what the agent's says."""
    if err.status != 422:
        return
    log.warning(
        "ingest batch refused",
        gateway_id=gateway,
        code=err.code,
        error=err.message,
        problems="; ".join(problem_text(d) for d in err.details[:20]),
        more=max(0, len(err.details) - 20),
    )


def problem_text(detail: dict[str, Any]) -> str:
    """One 422 detail as a log fragment: what it names, the field, the message."""
    names = [f"{k}={detail[k]}" for k in ("alert_id", "seq", "mark_index") if k in detail]
    field = detail.get("field", "")
    return " ".join([*names, f"{field}: {detail.get('message', '')}".lstrip(": ")])


def nfc_keys(batch: Batch) -> Batch:
    """``batch`` with every sensor key in NFC, the form keys are kept in: an agent older
    than that rule (or any other client) may send ``café`` with a combining accent, and its
    readings must land on the same sensor as the precomposed form's."""
    keys = {r.key for r in batch.readings} | {a.key for a in batch.alerts}
    keys |= {m.key for m in batch.marks}
    if all(is_nfc(k) for k in keys):
        return batch
    return replace(
        batch,
        readings=[r if is_nfc(r.key) else replace(r, key=nfc(r.key)) for r in batch.readings],
        alerts=[a if is_nfc(a.key) else replace(a, key=nfc(a.key)) for a in batch.alerts],
        marks=[m if is_nfc(m.key) else replace(m, key=nfc(m.key)) for m in batch.marks],
    )


def check_new_sensors(
    storage: Storage, factory_id: int, batch: Batch, limits: SensorLimits
) -> None:
    """422 naming the limit and each reading (seq) that would create a sensor past it.

    Checked before the write transaction: two batches of one factory racing past the
    factory's limit can overshoot it by at most one batch's new sensors."""
    keys = {r.key for r in batch.readings} | {a.key for a in batch.alerts}
    count, known = storage.sensor_census(factory_id, keys)
    if count is None or len(known) == len(keys):
        return
    details, limit = batchcheck.new_sensor_problems(batch, known, count, limits)
    if limit is None:
        return
    SENSOR_LIMIT_REFUSALS.labels(limit).inc()
    refused = len({d["seq"] for d in details if "seq" in d})
    raise ApiError(
        422,
        "sensor_limit",
        f"{refused} reading(s) would create sensors past {limit}; nothing stored",
        details,
    )


def ingest(
    storage: Storage,
    principal: Principal,
    body: bytes,
    content_encoding: str | None,
    *,
    max_body_bytes: int,
    max_decompressed_bytes: int,
    window: TsWindow = NO_WINDOW,
    sensor_limits: SensorLimits = NO_SENSOR_LIMITS,
) -> IngestResult:
    """Apply one sync batch for ``principal`` (a gateway token), or raise ApiError.

    Every check happens before the one write transaction, so a rejected batch leaves no
    trace: not a reading, not a sensor, not a last_seen.
    """
    try:
        return _ingest(
            storage,
            principal,
            body,
            content_encoding,
            max_body_bytes=max_body_bytes,
            max_decompressed_bytes=max_decompressed_bytes,
            window=window,
            sensor_limits=sensor_limits,
        )
    except ApiError as err:
        _log_refusal(err, principal.gateway_name)
        raise


def _ingest(
    storage: Storage,
    principal: Principal,
    body: bytes,
    content_encoding: str | None,
    *,
    max_body_bytes: int,
    max_decompressed_bytes: int,
    window: TsWindow,
    sensor_limits: SensorLimits,
) -> IngestResult:
    if len(body) > max_body_bytes:
        raise ApiError(
            413,
            "payload_too_large",
            f"request body exceeds {max_body_bytes} bytes",
            [{"field": "body", "message": f"{len(body)} bytes > {max_body_bytes}"}],
        )
    batch, clears = decode(
        body, content_encoding, max_decompressed_bytes=max_decompressed_bytes, window=window
    )
    if principal.gateway_id is None or principal.factory_id is None:
        raise forbidden("only gateway tokens may ingest")
    if batch.gateway_id != principal.gateway_name:
        raise forbidden(
            f"this token belongs to gateway {principal.gateway_name!r}, "
            f"the batch names {batch.gateway_id!r}"
        )
    if clears:
        # decode held the batch's problems back only to learn which clears stand: check
        # again once the clears the hub can apply are made storable.
        batch = reconcile_clears(storage, principal.gateway_id, batch, clears)
        problems = batchcheck.report_problems(batch) + batchcheck.reading_problems(batch)
        problems += batchcheck.alert_problems(batch, window, time.time())
        problems += batchcheck.mark_problems(batch, window, time.time())
        if problems:
            raise _invalid(problems)
    check_new_sensors(storage, principal.factory_id, batch, sensor_limits)
    try:
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
            token_id=principal.token_id,
        )
    except TokenRevoked:
        # The token came from the per-process cache; the batch's transaction knew better.
        raise unauthorized() from None
    if batch.marks:
        # After the readings: a birth's fresh mark finds the sensors its readings created.
        storage.apply_marks(principal.factory_id, batch.marks)
    INGEST_READINGS.labels("accepted").inc(result.accepted)
    INGEST_READINGS.labels("duplicate").inc(result.duplicates)
    return IngestResult(
        accepted=result.accepted,
        duplicates=result.duplicates,
        config_version=result.config_version,
    )
