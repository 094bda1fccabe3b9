"""Which factory's sensor a key is: one key in two factories is two sensors.

A gateway's reading lands on the sensor with its key in the gateway's own factory (made on
first data when there is none). An admin who creates ``lineA/oven1/temp`` in plant-2 while
plant-1's gateway publishes that key gets a sensor no reading ever reaches, and plant-1 a
second one. So:

* the 201 of ``POST /machines`` warns ``key_in_other_factory`` in ``meta.warnings`` when
  another factory has a machine with the same line and name (its sensors' keys would be the
  same), and that of ``POST /sensors`` when another factory has a sensor with the same key,
  naming the other factory's machine or sensor. A warning, not a refusal: two plants whose
  lines are both called ``line1`` are normal, each with its own gateways;
* the 201 of a sensor names the gateways whose readings of its key land on it
  (``meta.fed_by``), with a ``no_gateway`` warning when its factory has none;
* ``GET /gateways/:id/config`` lists every sensor the gateway's keys map to, with its factory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hub.storage import Storage

CONFLICT = "key_in_other_factory"

Notice = dict[str, Any]


def _owners(
    rows: list[dict[str, Any]], factory_id: int, scope: frozenset[int] | None
) -> list[dict[str, Any]]:
    # A caller limited to some factories is told only of those: the rest do not exist for it.
    return [
        {"id": r["id"], "factory_id": r["factory_id"], "factory": r["factory"]}
        for r in rows
        if r["factory_id"] != factory_id and (scope is None or r["factory_id"] in scope)
    ]


def _warn(what: str, key: str, others: list[dict[str, Any]]) -> list[Notice]:
    if not others:
        return []
    where = ", ".join(f"{o['factory']!r} ({what} {o['id']})" for o in others)
    message = (
        f"{what} key {key!r} also exists in factory {where}; a gateway's readings land on "
        "the sensor of its own factory"
    )
    return [{"code": CONFLICT, "message": message, "others": others}]


def check_machine(
    storage: Storage, fields: Mapping[str, Any], scope: frozenset[int] | None = None
) -> list[Notice]:
    """The warnings for the 201 of a new machine ``fields``."""
    line, name = str(fields["line"]), str(fields["name"])
    others = _owners(storage.machines_named(line, name), int(fields["factory_id"]), scope)
    return _warn("machine", f"{line}/{name}", others)


def check_sensor(
    storage: Storage, fields: Mapping[str, Any], scope: frozenset[int] | None = None
) -> list[Notice]:
    """The warnings for the 201 of a new sensor ``fields`` (none when its machine does not
    exist: creating it answers that)."""
    machine = storage.get_machine(int(fields["machine_id"]))
    if machine is None:
        return []
    key = f"{machine['line']}/{machine['name']}/{fields['name']}"
    others = _owners(storage.list_sensors(key=key), int(machine["factory_id"]), scope)
    return _warn("sensor", key, others)


def fed_by(storage: Storage, factory_id: int) -> tuple[list[str], list[Notice]]:
    """The gateways whose readings land on a sensor of ``factory_id``, and a warning when
    there are none."""
    names = [g["name"] for g in storage.list_gateways() if g["factory_id"] == factory_id]
    if names:
        return names, []
    warning = {
        "code": "no_gateway",
        "message": "no gateway is registered to this sensor's factory: readings of its key "
        "from gateways of other factories land on their own factory's sensor",
    }
    return names, [warning]


def gateway_sensors(storage: Storage, name: str) -> dict[str, Any] | None:
    """The factory of gateway ``name`` and every sensor its keys map to (None: no such
    gateway)."""
    gateway = storage.get_gateway(name)
    if gateway is None:
        return None
    factory_id = int(gateway["factory_id"])
    sensors = storage.list_sensors(factory_id=factory_id)
    return {
        "factory_id": factory_id,
        "factory": gateway["factory"],
        "mapped_sensors": [
            {"key": s["key"], "sensor_id": s["id"], "factory_id": factory_id} for s in sensors
        ],
    }
