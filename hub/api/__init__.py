"""The hub's HTTP API: one module per resource, each handing its routes to hub.app.

``http`` holds the request types (a leaf: no handler imports the app); ``ingest``,
``catalog``, ``crud``, ``readings``, ``alerts``, ``rules``, ``anomalies``, ``report``,
``audit``, ``health`` and ``docs`` each have a ``routes(hub) -> list[Route]``; the rest parse
requests and shape answers for them. docs/architecture.md ("The hub's house") has the map.
"""
