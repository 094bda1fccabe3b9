"""HTTP handlers by topic; each module lists its routes for hub.app.Hub.routes()."""
