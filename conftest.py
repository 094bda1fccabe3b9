# Root conftest: makes the repo root importable for pytest (agent, hub, shared, devtools).
