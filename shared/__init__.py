"""What the edge agent and the hub both import: wire format, payload/topic parsing, config."""

__version__ = "0.1.0"
