"""The demo's alarm story, run beside the live summary: an admin sets a sensor's maximum and an
alert rule on it, a spike is published on MQTT, the edge opens an alert for each
(offline-capable, in the Rust engine), they reach the hub as ONE alarm at the more severe of
the two, an operator acknowledges it with a comment, and it clears once the values are back
to normal. :attr:`AlarmStory.status` is the step reached, for the summary line."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from devtools.stack import Hub

KEY = "demo/press/temp"
TOPIC = f"factory/{KEY}"
# The spike passes both the sensor's maximum (by 8 %: "medium" at the edge, a warning) and
# the CRITICAL rule: one alarm, critical.
NORMAL, SPIKE, MAXIMUM, THRESHOLD = 40.0, 130.0, 120.0, 100.0


class AlarmStory(threading.Thread):
    def __init__(self, hub: Hub, mqtt_port: int, *, step_s: float = 0.5) -> None:
        super().__init__(name="demo-alarm", daemon=True)
        self.hub = hub
        self.mqtt_port = mqtt_port
        self.step_s = step_s
        self.status = "waiting for the hub"
        self.steps: list[str] = []
        self._stop = threading.Event()
        self._mqtt: mqtt.Client | None = None

    def stop(self) -> None:
        self._stop.set()

    def _say(self, step: str) -> None:
        self.steps.append(step)
        self.status = " > ".join(self.steps)

    def _publish(self, value: float) -> None:
        # One connection for the whole story: paho's publish.single() connects and tears down
        # per message, and its teardown logs "Client is not connected" over the summary line.
        if self._mqtt is None:
            self._mqtt = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="demo-alarm")
            self._mqtt.connect("127.0.0.1", self.mqtt_port)
            self._mqtt.loop_start()
        self._mqtt.publish(TOPIC, f'{{"value": {value}}}', qos=1).wait_for_publish(10)

    def _until(self, check: Callable[[], Any], feed: float | None = None) -> Any:
        """Ask the hub until ``check`` answers; publish ``feed`` meanwhile (the edge decides
        on readings, so a steady value keeps the story moving)."""
        while not self._stop.is_set():
            if feed is not None:
                self._publish(feed)
            found = check()
            if found:
                return found
            self._stop.wait(self.step_s)
        raise _Stopped

    def run(self) -> None:
        try:
            self._story()
        except _Stopped:
            pass
        except Exception as exc:  # the demo goes on without its story
            self.status = f"alarm story failed: {exc}"
        finally:
            if self._mqtt is not None:
                self._mqtt.loop_stop()
                self._mqtt.disconnect()

    def _story(self) -> None:
        admin = self.hub.cli("token", "add", "--role", "admin")
        operator = self.hub.cli("token", "add", "--role", "operator")
        with self.hub.client(admin) as c, self.hub.client(operator) as op:

            def sensor() -> int | None:
                rows = c.get("/api/v1/sensors", params={"key": KEY}).json()["data"]
                return int(rows[0]["id"]) if rows else None

            sensor_id = self._until(sensor, feed=NORMAL)
            c.put(f"/api/v1/sensors/{sensor_id}/thresholds", json={"max": MAXIMUM})
            rule = c.post(
                f"/api/v1/sensors/{sensor_id}/rules",
                json={
                    "condition": "GREATER_THAN",
                    "threshold": THRESHOLD,
                    "severity": "CRITICAL",
                    "deadband": 5.0,
                },
            ).json()["data"]
            self._say(f"max {MAXIMUM:g}, rule #{rule['id']} > {THRESHOLD:g} CRITICAL")

            def active() -> dict[str, Any] | None:
                rows = c.get(
                    "/api/v1/alerts", params={"sensor_id": sensor_id, "state": "active"}
                ).json()["data"]
                # One alarm for the sensor; critical once the rule has fired too.
                return rows[0] if len(rows) == 1 and rows[0]["severity"] == "critical" else None

            # The maximum and the rule reach the edge with the next sync; the spike goes on
            # until both have fired.
            self._say(f"spike {SPIKE:g}")
            alert = self._until(active, feed=SPIKE)
            self._say(f"one alarm #{alert['id']} open ({alert['severity']})")
            time.sleep(1.0)  # let a person read it
            op.post(f"/api/v1/alerts/{alert['id']}/ack", json={"comment": "demo: checked"})
            self._say("acknowledged by operator")

            def cleared() -> bool:
                got = c.get(f"/api/v1/alerts/{alert['id']}").json()["data"]
                return bool(got["state"] == "cleared")

            self._until(cleared, feed=NORMAL)
            self._say("cleared")


class _Stopped(Exception):
    pass
