"""``edge-hub``: serve the API, manage gateways and tokens, check a config.

``main`` (the parser and the database commands), ``serve`` (the hub and its jobs),
``accounts`` (gateways and tokens), ``streams`` (where commands print, the database they
open). Exit status: 0 ok, 1 the operation failed (gateway exists, port busy, database
unusable), 2 bad usage, bad configuration or an unknown id.
"""

from hub.cli.main import build_parser, config_path, main
from hub.cli.serve import DRAIN_S, FLUSH_S, install_stop_handlers, port_problem

__all__ = [
    "DRAIN_S",
    "FLUSH_S",
    "build_parser",
    "config_path",
    "install_stop_handlers",
    "main",
    "port_problem",
]
