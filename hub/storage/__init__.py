"""The one seam to the database: every SQL statement of the hub lives in this package.

Handlers and the CLI speak to :class:`Storage` in domain terms (gateways, tokens, batches,
series); which engine runs behind it is the ``database`` setting's business alone.

Layout: ``interface`` (the contract), ``model`` (errors and values), ``url`` and
``engines`` (the ``database`` setting -> an engine), the statements both SQL engines share by
concern (``tokens``, ``ingest``, ``reads``, ``thresholds``, ``anomalies``, ``alerts``,
``rules``, ``crud``, ``bulk``, ``report``, ``audit``, ``sessions``, ``rollups`` over
``sqlbase``; the ``*_schema`` modules hold their migration steps), ``migrations`` (the
versioned-schema runner), ``copy`` (copy-data between engines), and one package per engine:
``sqlite`` and ``postgres``, each with its connections (``pool``), schema, catalog (for
copy-data) and ``lead`` (which hub process runs a periodic job); PostgreSQL adds
``partitions`` (readings by day) and its rollup statements.
"""

from hub.storage.engines import open_storage
from hub.storage.interface import Stats, Storage
from hub.storage.model import (
    SEQ_BITS,
    Conflict,
    FoundAnomaly,
    GatewayReport,
    StorageError,
    StoreResult,
    Thresholds,
    reading_id,
)

__all__ = [
    "SEQ_BITS",
    "Conflict",
    "FoundAnomaly",
    "GatewayReport",
    "Stats",
    "Storage",
    "StorageError",
    "StoreResult",
    "Thresholds",
    "open_storage",
    "reading_id",
]
