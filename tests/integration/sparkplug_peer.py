"""An independent Sparkplug B edge node for the integration tests: pysparkplug's EdgeNode
with one Device, driven by line commands on stdin, answering Node Control/Rebirth.

Runs in its own process with pysparkplug's dependencies on PYTHONPATH (pysparkplug 0.6
needs paho-mqtt < 2, the agent paho-mqtt 2; see sparkplug_peer_path in
tests/integration/test_sparkplug.py). Not a test module: pytest does not collect it.

Commands (one per line): ``ndata TEMP TS_MS``, ``ddata PRESSURE TS_MS``, ``quit``.
Events on stdout, one JSON object per line: ``{"event": "ready"}``, ``{"event": "rebirth"}``
(after the births were published again), ``{"event": "sent"}`` after each command.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
from typing import Any

import pysparkplug as sp


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--node", required=True)
    ap.add_argument("--device", required=True)
    args = ap.parse_args()
    now = sp.get_current_timestamp()
    node_metrics = [
        sp.Metric(timestamp=now, name="temp", datatype=sp.DataType.DOUBLE, value=20.0),
        sp.Metric(timestamp=now, name="speed", datatype=sp.DataType.INT32, value=-7),
        sp.Metric(timestamp=now, name="running", datatype=sp.DataType.BOOLEAN, value=True),
        sp.Metric(timestamp=now, name="label", datatype=sp.DataType.STRING, value="press 4"),
        sp.Metric(timestamp=now, name="Line/rate", datatype=sp.DataType.FLOAT, value=1.5),
    ]
    device_metrics = [
        sp.Metric(timestamp=now, name="pressure", datatype=sp.DataType.FLOAT, value=2.0),
        sp.Metric(timestamp=now, name="count", datatype=sp.DataType.INT64, value=-(2**40)),
    ]
    rebirth = threading.Event()

    def on_command(_node: sp.EdgeNode, message: sp.Message) -> None:
        # On paho's network thread: reconnecting from here would stop the loop it runs in.
        for metric in getattr(message.payload, "metrics", ()):
            if metric.name == "Node Control/Rebirth" and metric.value:
                rebirth.set()

    node = sp.EdgeNode(args.group, args.node, node_metrics, cmd_callback=on_command)
    node.register(sp.Device(args.device, device_metrics))
    # connect() returns before the births are out; the broker echoing our own DBIRTH (the
    # last birth published) tells they are, so DATA never overtakes them.
    born = threading.Event()
    own_dbirth = sp.Topic(
        message_type=sp.MessageType.DBIRTH,
        group_id=args.group,
        edge_node_id=args.node,
        device_id=args.device,
    )
    node.subscribe(own_dbirth, sp.QoS.AT_MOST_ONCE, lambda _node, _msg: born.set())

    def connect() -> None:
        born.clear()
        node.connect("127.0.0.1", port=args.port, blocking=False)
        if not born.wait(20):
            raise SystemExit("births not echoed by the broker")

    connect()
    emit("ready")

    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("quit")

    threading.Thread(target=read_stdin, daemon=True).start()
    while True:
        if rebirth.is_set():
            rebirth.clear()
            # pysparkplug has no rebirth call: a new connection publishes NBIRTH and DBIRTH
            # with the current values (and a new bdSeq).
            node.disconnect()
            connect()
            emit("rebirth")
        try:
            line = commands.get(timeout=0.05)
        except queue.Empty:
            continue
        cmd, *rest = line.split()
        if cmd == "quit":
            node.disconnect()
            return
        value, ts = float(rest[0]), int(rest[1])
        if cmd == "ndata":
            node.update(
                [sp.Metric(timestamp=ts, name="temp", datatype=sp.DataType.DOUBLE, value=value)]
            )
        elif cmd == "ddata":
            node.update_device(
                args.device,
                [sp.Metric(timestamp=ts, name="pressure", datatype=sp.DataType.FLOAT, value=value)],
            )
        emit("sent", cmd=cmd)


if __name__ == "__main__":
    main()
