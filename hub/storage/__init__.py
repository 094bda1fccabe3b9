"""The one seam to the database: every SQL statement of the hub lives in this package.

Handlers and the CLI speak to :class:`Storage` in domain terms (gateways, tokens, batches,
series); which engine runs behind it is the ``database`` setting's business alone.

Layout: ``interface`` (the face: Storage, one-line delegations to the concerns; its read
side in ``read_face``, the writes people make in ``people_face``), ``engines`` and ``url``
(the ``database`` setting -> an engine, looked up by name so the face does not import what
builds on it). The concerns, one object each, built from the database handle and the
engine's dialect with their collaborators passed in:
``ingest``, ``bulk``, ``rollups``, ``reads``, ``catalog``, ``crud``, ``alerts``,
``offline``, ``rules``, ``webhooks``, ``reports``, ``access``, ``owners``, ``audit``. Leaf
modules they share: ``model`` (errors and values), ``sqlbase`` (connections, Database, row helpers),
``tiers`` (rollup arithmetic), ``selects``, ``changelog`` (audit rows in a change's
transaction), ``alert_rows``. ``dialect`` is the base of what differs per engine;
``migrations`` runs the versioned schema; ``copy`` is copy-data between engines. One package
per engine, ``sqlite`` and ``postgres``: its ``pool``, ``dialect``, schema, catalog (for
copy-data) and ``lead``; PostgreSQL adds ``partitions`` (readings by day) and its rollup
COPY statements.
"""

from hub.storage.engines import open_storage
from hub.storage.interface import Storage
from hub.storage.lag import ReadNote, current_note, noting_reads
from hub.storage.model import (
    SEQ_BITS,
    Conflict,
    DatabaseUnavailable,
    FoundAnomaly,
    GatewayReport,
    NoWritableHost,
    Stats,
    StorageError,
    StoreResult,
    Thresholds,
    TokenRevoked,
    UnknownFactory,
    Waits,
    reading_id,
)

__all__ = [
    "SEQ_BITS",
    "Conflict",
    "DatabaseUnavailable",
    "FoundAnomaly",
    "GatewayReport",
    "NoWritableHost",
    "ReadNote",
    "Stats",
    "Storage",
    "StorageError",
    "StoreResult",
    "Thresholds",
    "TokenRevoked",
    "UnknownFactory",
    "Waits",
    "current_note",
    "noting_reads",
    "open_storage",
    "reading_id",
]
