"""edge-agent: MQTT -> durable SQLite buffer -> threshold checks -> sync to the hub."""

from shared import __version__

__all__ = ["__version__"]
