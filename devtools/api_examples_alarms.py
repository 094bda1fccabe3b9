"""docs/api.md's sections on alert rules and the alert lifecycle, from the live system that
devtools.api_examples runs: a rule set at the hub fires at the edge on a real spike, and the
alert it raises is worked through (ack, shelve, unshelve, the journal)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import httpx

from devtools.stack import Hub, wait_for

Show = Callable[..., None]
KEY = "line1/press4/pressure"


ONE_ALARM_NOTE = (
    "One alarm per sensor, on one severity scale "
    "([alarms](alarms.md#one-alarm-per-sensor-one-severity-scale)): `severity` is `info`, "
    "`warning` or `critical` for every kind (the edge's threshold grades `medium` and `high` "
    "are `warning`; the `severity` filter takes those names too, for their place on the "
    "scale). The edge alerts of one sensor active at the same time (a threshold, a rule, a "
    "rate of change) are one alert: at the severity of the most severe of them, its `kind`, "
    "`rule_id`, `breach_type`, `threshold_value` and `value` those of the one that decides "
    "it; it clears when the last of them clears. A second source that raises it is journaled "
    "`escalated` (the comment names the rule or threshold), withdraws an acknowledgement "
    "(journaled `unacknowledged`) and is sent to webhooks as `alert.opened` with "
    "`escalated: true`; one that does not raise it is journaled `source_opened`; one that "
    "clears while others stand, `de-escalated` (when the severity falls) or `source_cleared`."
)


def alarm_examples(
    lines: list[str],
    show: Show,
    hub: Hub,
    c: httpx.Client,
    a: httpx.Client,
    publish: Callable[[str, float], None],
) -> None:
    """``show`` is api_examples' section writer, ``c``/``a`` read and admin clients,
    ``publish(key, value)`` one reading on MQTT."""
    operator = hub.cli("token", "add", "--role", "operator", "--name", "control room")
    publish(KEY, 4.0)
    wait_for("the pressure sensor", lambda: _sensor(c) is not None, timeout=30, every=0.2)
    sid = _sensor(c)
    rules = f"/api/v1/sensors/{sid}/rules"
    warn = {"condition": "GREATER_THAN", "threshold": 8.0, "severity": "WARNING", "deadband": 0.5}
    r = a.post(rules, json=warn)
    show(
        lines,
        "Add an alert rule (admin)",
        "POST",
        rules,
        r,
        f"Body: `{json.dumps(warn)}`. As the seeds' AlertRule, plus `deadband` (clears only "
        "once back past the threshold by this much) and `delay_s` (the condition must hold "
        "this long first). The gateways get it with their next sync and evaluate it at the "
        "edge, offline too. A sensor's rules make one alert whose severity follows the most "
        "severe rule firing, up and down in place.",
    )
    rule_id = r.json()["data"]["id"]
    crit = {"condition": "OUT_OF_RANGE", "threshold": 1.0, "threshold_high": 12.0}
    a.post(rules, json={**crit, "severity": "CRITICAL", "delay_s": 2.0})
    show(lines, "A sensor's rules", "GET", rules, c.get(rules))
    bad = {"condition": "OUT_OF_RANGE", "threshold": 5.0, "threshold_high": 2.0, "delay_s": -1}
    show(
        lines,
        "A bad rule",
        "POST",
        rules,
        a.post(rules, json=bad),
        f"Body: `{json.dumps(bad)}`: every bad field is named.",
    )
    patch = {"threshold": 7.5}
    show(
        lines,
        "Change a rule (admin)",
        "PATCH",
        f"/api/v1/rules/{rule_id}",
        a.patch(f"/api/v1/rules/{rule_id}", json=patch),
        f"Body: `{json.dumps(patch)}`; the other fields stay.",
    )
    with hub.client(hub.cli("gateway", "add", "gw-docs", "--factory", "plant-1")) as g:
        show(
            lines,
            "The rules in a gateway's config",
            "GET",
            "/api/v1/gateways/gw-docs/config",
            g.get("/api/v1/gateways/gw-docs/config"),
            "`alert_rules` are the enabled rules of the gateway's factory.",
        )

    def active() -> list[dict[str, Any]]:
        params = {"sensor_id": sid, "state": "active"}
        return list(c.get("/api/v1/alerts", params=params).json()["data"])

    # A spike at the edge: published until the agent, with the rule from its last config
    # fetch, raised the alert and synced it.
    wait_for("the rule alert", lambda: _feed(publish, 9.5) and bool(active()), 60, every=0.5)
    show(
        lines,
        "The fleet's alerts",
        "GET",
        "/api/v1/alerts?state=active&acknowledged=false",
        c.get("/api/v1/alerts", params={"state": "active", "acknowledged": "false"}),
        "Filters: `state`, `acknowledged`, `severity`, `kind`, `factory_id`, `gateway_id`, "
        "`sensor_id`, `machine_id` (the alerts of that machine's sensors), `shelved` (`true`: "
        "shelved now; `false`: not); newest first, paged.\n\n"
        "An alert: `id`; `kind` (`threshold`, `rule`, `rate_of_change`, `gateway_offline`); "
        "`sensor_id` (null for a gateway's alert), `gateway_id`, `factory_id`, `rule_id` "
        "(the alert rule that fired, else null); `severity`; `state` (`active` | `cleared`) and "
        "`acknowledged` (true | false), the two together as `status` (`active_unack`, "
        "`active_ack`, `cleared_unack`, `cleared_ack`); `acknowledged_at`, `acknowledged_by` "
        "(`by`: who, as in the journal); `shelved` and `shelved_until` (null unless shelved now); "
        "`chattering` (its source cleared `[alarms] chattering_count` times within "
        "`chattering_window_s`) and `stale` (active longer than `stale_after_s`), marks that "
        "stay once set; "
        "`opened_at`, `cleared_at`, `updated_at`; `breach_type`, `value` (the reading that "
        "opened or last escalated it), `peak_value` (the most extreme value while it was "
        "active: the highest reading of its sensor above a maximum, the lowest below a "
        "minimum, from the readings stamped between `opened_at` and `cleared_at` and the "
        "values the edge reported; null for a gateway's alert), `threshold_value`. "
        "`GET /api/v1/alerts/{id}` adds the `journal` (its newest 100 transitions) and "
        "`journal_total` (below).\n\n" + ONE_ALARM_NOTE,
    )
    alert_id = active()[0]["id"]
    machine_id = c.get(f"/api/v1/sensors/{sid}").json()["data"]["machine_id"]
    show(
        lines,
        "The alarm roll-up",
        "GET",
        f"/api/v1/alarm-summary?machine_id={machine_id}",
        c.get("/api/v1/alarm-summary", params={"machine_id": machine_id}),
        SUMMARY_NOTE,
    )
    with hub.client(operator) as op:
        body = {"comment": "valve checked"}
        show(
            lines,
            "Acknowledge an alert (operator)",
            "POST",
            f"/api/v1/alerts/{alert_id}/ack",
            op.post(f"/api/v1/alerts/{alert_id}/ack", json=body),
            f"Body: `{json.dumps(body)}`. An operator token (`edge-hub token add --role "
            "operator`) may acknowledge and shelve; read tokens get 403.",
        )
        show(
            lines,
            "Acknowledged already",
            "POST",
            f"/api/v1/alerts/{alert_id}/ack",
            op.post(f"/api/v1/alerts/{alert_id}/ack", json={}),
        )
        body2 = {"duration_s": 3600, "comment": "maintenance until noon"}
        show(
            lines,
            "Shelve an alert (operator)",
            "POST",
            f"/api/v1/alerts/{alert_id}/shelve",
            op.post(f"/api/v1/alerts/{alert_id}/shelve", json=body2),
            f"Body: `{json.dumps(body2)}`. At most 7 days; it unshelves itself when the time "
            "runs out. A shelved alert is silent: its changes are journaled but sent to no "
            "webhook. When the shelve is lifted or runs out and the alert is still active, "
            "webhooks get one `alert.opened` (`gateway.offline` for a gateway's) with "
            "`reannounced: true`, carrying the alert as it is then.",
        )
        show(
            lines,
            "A shelve without a duration",
            "POST",
            f"/api/v1/alerts/{alert_id}/shelve",
            op.post(f"/api/v1/alerts/{alert_id}/shelve", json={"comment": "forever"}),
        )
        show(
            lines,
            "Unshelve (operator)",
            "POST",
            f"/api/v1/alerts/{alert_id}/unshelve",
            op.post(f"/api/v1/alerts/{alert_id}/unshelve", json={}),
        )
        service = f"/api/v1/sensors/{sid}"
        body = {"comment": "recalibration until 14:00"}
        show(
            lines,
            "Take a sensor out of service (operator)",
            "POST",
            f"{service}/out-of-service",
            op.post(f"{service}/out-of-service", json=body),
            OUT_OF_SERVICE_NOTE,
        )
        show(
            lines,
            "Back in service (operator)",
            "POST",
            f"{service}/in-service",
            op.post(f"{service}/in-service", json={"comment": "recalibrated"}),
            "Its alerts still active are announced again (`reannounced: true`), and an alert "
            "the edge raised meanwhile and still reports active opens now. 409 when the "
            "sensor was not put out of service (its machine's status may still hold it: "
            "`machine` in the answer).",
        )
    wait_for("the alert to clear", lambda: _feed(publish, 4.0) and not active(), 60, every=0.5)
    show(
        lines,
        "An alert with its journal",
        "GET",
        f"/api/v1/alerts/{alert_id}",
        c.get(f"/api/v1/alerts/{alert_id}"),
        "Every transition with who (token id and role), when and the comment: the newest "
        "100, oldest of them first, and `journal_total`, how many there are in all (the "
        "journal itself, below). A gateway silent for `[alerts] gateway_offline_after_s` is "
        'one alert of kind `gateway_offline` (`sensor_id` null); its sensors show `"stale": '
        "true`.",
    )
    journal = f"/api/v1/alerts/{alert_id}/journal"
    show(
        lines,
        "An alert's journal, paged",
        "GET",
        f"{journal}?per_page=2",
        c.get(journal, params={"per_page": 2}),
        "Every transition of one alert, oldest first, as any list: `page`, `per_page` "
        "(default 100, at most 1000), `meta` page numbers and `links`. 404 for an unknown "
        "alert.",
    )
    _ingest_alerts(lines, show, hub)
    show(
        lines,
        "Delete a rule (admin)",
        "DELETE",
        f"/api/v1/rules/{rule_id}",
        a.delete(f"/api/v1/rules/{rule_id}"),
    )


SUMMARY_NOTE = (
    "One answer per level of the plant, as the console draws it. `alarms` is the state of "
    "the level asked for: `worst_severity` (the highest severity among its active alarms, "
    "null when none is active), `active` (active and not shelved), `unacknowledged` (not "
    "acknowledged, active or cleared, and not shelved), `shelved` (active and shelved: a "
    "shelved alarm counts only here) and `in_alarm` (`active` > 0). Each level is the sum "
    "of the one below: sensor, machine, factory, fleet. Without a parameter: the fleet, "
    "with every factory in `factories` and the machines that have active or unacknowledged "
    "alarms in `machines`; `?factory_id=`: every machine of that factory (with its `status`) "
    "in `machines`; `?machine_id=`: every sensor of that machine in `sensors`, with its "
    "latest `value`, its `time` and `unit`. A gateway's alarms (`gateway_offline`) count for "
    "its factory and the fleet, not for a machine. A token or user limited to some factories "
    "sees only theirs. Both parameters at once: 400; an unknown id (or another factory's): "
    "404."
)

OUT_OF_SERVICE_NOTE = (
    'Body: `{"comment": "..."}` (optional, at most 2000 characters). While out of service '
    "the hub opens no alert for the sensor and sends no webhook for it; its alerts already "
    'active show `"out_of_service": true` with who, since when and why. A machine whose '
    "`status` is `MAINTENANCE` or `OFFLINE` does the same for all its sensors (`machine` in "
    "the answer). The edge measures and buffers as always and the readings are stored. 409 "
    "when it is out of service already; docs/alarms.md tells the rest."
)


INGEST_ALERTS_NOTE = (
    'At most 10000 alerts in a batch (`"field": "alerts"`; the agent\'s `[alerts] '
    "batch_max` cannot be set higher), each alert id once. An alert the hub refuses is named "
    "by `alert_id`; the agent moves it to its dead letters with the hub's reason (counted in "
    "`edge-agent status`) and sends the rest again, and the hub logs each problem "
    "(`ingest batch refused`). A clear (an alert with `closed_at`) of an alert the hub holds "
    "active is never refused for a field that only matters for opening it (`opened_at`, "
    "`reading_seq`): it is applied with what the hub has from the opening, and when its own "
    "`closed_at` is outside the hub's time window, at the time the hub received it. A "
    "`closed_at` before `opened_at` (the reading that cleared the alert is older than the one "
    "that opened it) is a clear at the opening time. A rule alert carries `rule_id`, the "
    "hub's id of the rule that fired (of several firing, the one that decides its severity); "
    "it must be in 1..2^63-1. A `rule_id` that is not a rule of the alert's sensor (deleted "
    "since it fired, say) is not refused: the hub logs it (`edge alert names a rule that is "
    "not one of its sensor's`) and finds the rule as for agents that send none, by the "
    "severity and the threshold crossed (the first of two alike)."
)


def _ingest_alerts(lines: list[str], show: Show, hub: Hub) -> None:
    """A batch naming one alert id twice: refused, naming the id."""
    token = hub.cli("gateway", "add", "gw-09", "--factory", "plant-1")
    alert = {
        "id": 7,
        "key": "line1/press4/pressure",
        "rule": "rule",
        "breach_type": "above_maximum",
        "severity": "warning",
        "threshold_value": 8.0,
        "value": 9.5,
        "opened_at": time.time() - 60,
    }
    body = {"gateway_id": "gw-09", "readings": [], "alerts": [alert, {**alert, "value": 9.8}]}
    with hub.client(token) as g:
        show(
            lines,
            "Ingest: alerts in a batch",
            "POST",
            "/api/v1/ingest",
            g.post("/api/v1/ingest", json=body),
            INGEST_ALERTS_NOTE,
        )


def _sensor(c: httpx.Client) -> int | None:
    rows = c.get("/api/v1/sensors", params={"key": KEY}).json()["data"]
    return int(rows[0]["id"]) if rows else None


def _feed(publish: Callable[[str, float], None], value: float) -> bool:
    publish(KEY, value)
    return True
