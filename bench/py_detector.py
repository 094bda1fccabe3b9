"""The baseline for the anomaly-detector rows: the same /detect endpoint in plain Python
(orjson + numpy) under Robyn, as a team without the Rust service would write it.

Usage: python -m bench.py_detector PORT
"""

from __future__ import annotations

import sys

import numpy as np
import orjson


def detect(body: bytes) -> bytes:
    doc = orjson.loads(body)
    values = np.asarray(doc["values"], dtype=np.float64)
    threshold = float(doc.get("threshold", 2.0))
    mean = float(values.mean())
    std = float(values.std())  # population, like anomaly-detector
    if std == 0.0:
        idx = np.empty(0, dtype=np.int64)
        z = np.zeros_like(values)
    else:
        z = (values - mean) / std
        idx = np.flatnonzero(np.abs(z) > threshold)
    return orjson.dumps(
        {
            "statistics": {"mean": mean, "std_dev": std, "count": int(values.size)},
            "anomalies": [
                {"index": int(i), "value": float(values[i]), "z_score": float(z[i])} for i in idx
            ],
        }
    )


def main() -> None:
    port = int(sys.argv[1])
    saved, sys.argv = sys.argv, sys.argv[:1]  # Robyn parses argv at import
    from robyn import Request, Response, Robyn

    sys.argv = saved
    app = Robyn(__file__)

    @app.post("/detect")
    def _detect(request: Request) -> Response:
        body = request.body
        raw = body.encode() if isinstance(body, str) else bytes(body)
        return Response(200, {"Content-Type": "application/json"}, detect(raw))

    @app.get("/health")
    def _health(request: Request) -> str:  # Robyn injects by parameter name
        return "ok"

    app.start(host="127.0.0.1", port=port, _check_port=False)


if __name__ == "__main__":
    main()
