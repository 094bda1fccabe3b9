"""The baseline for the agent-ingest row: the plainest correct-ish MQTT -> SQLite loop.

paho subscribes at QoS 1 (auto-ack on receipt, no parsing, no validation), and the main thread
commits whatever arrived every 20 ms with executemany into a WAL database. This is what a
hand-written script on a gateway would do; the agent must stay within a small factor of it
while also parsing, validating, dead-lettering and acking only after commit.

Usage: python -m bench.baseline_ingest PORT DB_PATH
"""

from __future__ import annotations

import sqlite3
import sys
import threading
import time

import paho.mqtt.client as mqtt


def main() -> None:
    port, path = int(sys.argv[1]), sys.argv[2]
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute(
        "CREATE TABLE IF NOT EXISTS msgs (id INTEGER PRIMARY KEY, topic TEXT, payload BLOB, t REAL)"
    )
    pending: list[tuple[str, bytes, float]] = []
    lock = threading.Lock()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with lock:
            pending.append((msg.topic, msg.payload, time.time()))

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id="bench-baseline", clean_session=False
    )
    client.on_message = on_message
    client.max_inflight_messages_set(1000)
    client.on_connect = lambda c, *_: c.subscribe("factory/#", qos=1)
    client.connect("127.0.0.1", port)
    client.loop_start()
    print("subscribed", flush=True)
    try:
        while True:
            time.sleep(0.02)
            with lock:
                batch = pending[:]
                pending.clear()
            if batch:
                db.execute("BEGIN")
                db.executemany("INSERT INTO msgs(topic, payload, t) VALUES (?,?,?)", batch)
                db.execute("COMMIT")
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
