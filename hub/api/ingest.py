"""``POST /api/v1/ingest``: a gateway's sync batch (hub.ingest decodes, checks and stores it,
idempotent per gateway and seq); counted by outcome in the hub's metrics."""

from __future__ import annotations

from hub import ingest, metrics
from hub.api.http import API, Ctx, Result, Route, Services
from hub.api.scope import FREE
from hub.errors import ApiError


def routes(hub: Services) -> list[Route]:
    settings = hub.settings

    def h_ingest(ctx: Ctx) -> Result:
        """Store a sync batch from a gateway (idempotent per gateway and seq)."""
        assert ctx.principal is not None
        try:
            result = ingest.ingest(
                hub.storage,
                ctx.principal,
                ctx.body,
                ctx.request.headers.get("content-encoding"),
                max_body_bytes=settings.max_body_bytes,
                max_decompressed_bytes=settings.max_decompressed_bytes,
                window=settings.ts_window(),
                sensor_limits=hub.sensor_limits,
            )
        except ApiError as err:
            metrics.INGEST_BATCHES.labels(str(err.status)).inc()
            if err.status == 422:
                rejected = {d.get("seq") for d in err.details if isinstance(d.get("seq"), int)}
                metrics.INGEST_READINGS.labels("rejected").inc(len(rejected))
            raise
        metrics.INGEST_BATCHES.labels("200").inc()
        data = {
            "accepted": result.accepted,
            "duplicates": result.duplicates,
            "config_version": result.config_version,
        }
        return data, {"gateway_id": ctx.principal.gateway_name}

    return [Route("POST", f"{API}/ingest", ("gateway",), h_ingest, scope=FREE)]
