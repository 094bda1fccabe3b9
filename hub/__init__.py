"""edge-hub: the central API (Robyn): idempotent ingest, storage, queries."""

from shared import __version__

__all__ = ["__version__"]
