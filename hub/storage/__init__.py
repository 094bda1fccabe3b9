"""The one seam to the database: every SQL statement of the hub lives in this package.

Handlers and the CLI speak to :class:`Storage` in domain terms (gateways, tokens, batches,
series); which engine runs behind it is the ``database`` setting's business alone.

Layout: ``interface`` (the contract), ``model`` (errors and values), the statements both SQL
engines share by concern (``tokens``, ``ingest``, ``reads``, ``thresholds``, ``anomalies``
over ``sqlbase``), ``migrations`` (the versioned-schema runner), and one package per engine
(``sqlite``) with its connections and schema.
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
