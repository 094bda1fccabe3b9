"""``GET /alarm-summary``: the alarm roll-up sensor -> machine -> factory -> fleet, one answer
per console page.

Every level carries ``alarms``: the worst severity among its active alarms, how many are
active, how many are not acknowledged (active or cleared), how many are shelved and how many
are out of service. Shelved alarms are suppressed: they count only as shelved; so are the
alarms of a sensor out of service (its own or its machine's): they count only as
``out_of_service``, never as active nor in the worst severity. Without a parameter the answer is the
fleet's, with every factory and the machines in alarm; ``?factory_id=`` adds every machine of
that factory; ``?machine_id=`` every sensor of that machine with its latest value and unit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from hub.api.http import API, Ctx, Result, Route, Services, charged
from hub.api.queries import optional_id
from hub.api.scope import LISTED
from hub.auth import READ_ROLES
from hub.errors import bad_param, not_found
from hub.storage import Storage
from hub.storage.alarm_summary import AlarmCount
from hub.storage.alert_rows import SEVERITY_RANK
from shared.timeutil import now, to_rfc3339

# The answer of the fleet or of one factory or machine: a plant page's worth of rows.
SUMMARY_ROWS = 200


def rollup(counts: Iterable[AlarmCount]) -> dict[str, Any]:
    """The alarm state of a set of counts: worst active severity (None when nothing is
    active), active, unacknowledged, shelved and out of service."""
    worst: str | None = None
    active = unacked = shelved = out = 0
    for c in counts:
        active += c.active
        unacked += c.unacknowledged
        shelved += c.shelved
        out += c.out_of_service
        if c.active and (
            worst is None or SEVERITY_RANK.get(c.severity, 0) > SEVERITY_RANK.get(worst, 0)
        ):
            worst = c.severity
    return {
        "worst_severity": worst,
        "active": active,
        "unacknowledged": unacked,
        "shelved": shelved,
        "out_of_service": out,
        "in_alarm": active > 0,
    }


def _by(counts: list[AlarmCount], key: Callable[[AlarmCount], int | None]) -> dict[Any, Any]:
    groups: dict[Any, list[AlarmCount]] = {}
    for c in counts:
        groups.setdefault(key(c), []).append(c)
    return {k: rollup(v) for k, v in groups.items()}


def summary(storage: Storage, ctx: Ctx) -> dict[str, Any]:
    params = ctx.params
    factory_id = optional_id(params, "factory_id")
    machine_id = optional_id(params, "machine_id")
    if factory_id is not None and machine_id is not None:
        raise bad_param("machine_id", "give factory_id or machine_id, not both")
    at = now()
    source = storage.alarm_summary
    # A caller limited to some factories sees only theirs; another factory's id is answered
    # as one that does not exist.
    scope = ctx.scope
    answer: dict[str, Any] = {
        "at": to_rfc3339(at),
        "factory_id": factory_id,
        "machine_id": machine_id,
        "factories": [],
        "machines": [],
        "sensors": [],
    }
    if machine_id is not None:
        machine = storage.get_machine(machine_id)
        if machine is None or (scope is not None and machine["factory_id"] not in scope):
            raise not_found("machine", machine_id)
        answer["factory_id"] = machine["factory_id"]
        counts = source.counts(at, machine_id=machine_id)
        per_sensor = _by(counts, lambda c: c.sensor_id)
        answer["alarms"] = rollup(counts)
        answer["sensors"] = [
            {**_sensor(storage, s), "alarms": per_sensor.get(s["id"], rollup([]))}
            for s in source.sensors(machine_id)
        ]
    elif factory_id is not None:
        outside = scope is not None and factory_id not in scope
        if outside or storage.get_factory(factory_id) is None:
            raise not_found("factory", factory_id)
        counts = source.counts(at, factory_id=factory_id)
        per_machine = _by(counts, lambda c: c.machine_id)
        answer["alarms"] = rollup(counts)
        answer["machines"] = [
            {**m, "alarms": per_machine.get(m["id"], rollup([]))}
            for m in source.machines(factory_id)
        ]
    else:
        counts = source.counts(at, factories=scope)
        per_factory = _by(counts, lambda c: c.factory_id)
        per_machine = _by(counts, lambda c: c.machine_id)
        answer["alarms"] = rollup(counts)
        answer["factories"] = [
            {**f, "alarms": per_factory.get(f["id"], rollup([]))} for f in source.factories(scope)
        ]
        # The fleet names only the machines that ask for attention.
        answer["machines"] = [
            {**m, "alarms": per_machine[m["id"]]}
            for m in source.machines(None, scope)
            if m["id"] in per_machine
            and (per_machine[m["id"]]["active"] or per_machine[m["id"]]["unacknowledged"])
        ]
    if ctx.reads is not None:
        ctx.reads.debit(
            len(counts)
            + len(answer["factories"])
            + len(answer["machines"])
            + len(answer["sensors"])
        )
    return answer


def _sensor(storage: Storage, row: dict[str, Any]) -> dict[str, Any]:
    newest = storage.latest(int(row["id"]))
    return {
        "id": row["id"],
        "key": row["key"],
        "name": row["name"],
        "unit": row["unit"],
        "thresholds": {"min": row["min_threshold"], "max": row["max_threshold"]},
        "stale": bool(row["stale"]),
        "value": None if newest is None else newest[2],
        "time": None if newest is None else to_rfc3339(newest[1]),
    }


def routes(hub: Services) -> list[Route]:
    storage = hub.storage

    def h_alarm_summary(ctx: Ctx) -> Result:
        """The alarm roll-up of the fleet, one factory (?factory_id=) or one machine
        (?machine_id=): worst active severity, active, unacknowledged, shelved and out-of-service
        counts."""
        return summary(storage, ctx), {}

    return [
        Route(
            "GET",
            f"{API}/alarm-summary",
            READ_ROLES,
            h_alarm_summary,
            charged(lambda _params: SUMMARY_ROWS),
            scope=LISTED,
        )
    ]
