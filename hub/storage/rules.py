"""Alert rules (the seeds' AlertRule) per sensor, and the part of a gateway's config they make.

Every change of a rule bumps its factory's ``config_version`` in the same transaction, as a
threshold change does: the gateways of that factory see the new version in their next ingest
answer and fetch ``GET /gateways/:id/config``, whose ``alert_rules`` come from here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from hub.storage.changelog import AuditEntry, Who, write_entry
from hub.storage.sqlbase import Conn, Database, dicts, row_dict
from shared.timeutil import now

RULE_COLUMNS = (
    "id, sensor_id, condition, threshold, threshold_high, severity, enabled, deadband, "
    "delay_s, created_at, updated_at"
)


@dataclass(frozen=True, slots=True)
class RuleSpec:
    """A validated rule (hub.api.rules checks the fields before storage sees them)."""

    condition: str
    threshold: float
    threshold_high: float | None
    severity: str
    enabled: bool
    deadband: float
    delay_s: float


def _rule(row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "enabled": bool(row["enabled"])}


def _bump(conn: Conn, sensor_id: int) -> int:
    row = conn.execute(
        "UPDATE factories SET config_version = config_version + 1 "
        "WHERE id = (SELECT factory_id FROM sensors WHERE id = ?) RETURNING config_version",
        (sensor_id,),
    ).fetchone()
    return int(row[0])


def _audit(
    conn: Conn, actor: Who | None, action: str, rule_id: int, detail: dict[str, Any]
) -> None:
    if actor is not None:
        write_entry(conn, AuditEntry(actor, action, "rule", str(rule_id), detail))


class Rules:
    def __init__(self, db: Database) -> None:
        self._db = db

    def list_rules(self, sensor_id: int) -> list[dict[str, Any]]:
        rows = self._db.all_dicts(
            f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE sensor_id = ? ORDER BY id",
            (sensor_id,),
        )
        return [_rule(r) for r in rows]

    def get_rule(self, rule_id: int) -> dict[str, Any] | None:
        row = self._db.one_dict(f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE id = ?", (rule_id,))
        return None if row is None else _rule(row)

    def add_rule(
        self, sensor_id: int, spec: RuleSpec, *, actor: Who | None = None
    ) -> tuple[dict[str, Any], int] | None:
        """Create a rule; (the rule, its factory's new config version), None: no sensor.
        ``actor``: the token behind it, recorded in the change log in the same transaction."""
        at = now()
        with self._db.write() as conn:
            if conn.execute("SELECT 1 FROM sensors WHERE id = ?", (sensor_id,)).fetchone() is None:
                return None
            fields = asdict(spec)
            cur = conn.execute(
                "INSERT INTO alert_rules (sensor_id, condition, threshold, threshold_high, "
                "severity, enabled, deadband, delay_s, created_at, updated_at) "
                f"VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING {RULE_COLUMNS}",
                (sensor_id, *fields.values(), at, at),
            )
            rule = row_dict(cur, cur.fetchone())
            version = _bump(conn, sensor_id)
            _audit(conn, actor, "rule.create", rule["id"], {"sensor_id": sensor_id, **fields})
        return _rule(rule), version

    def update_rule(
        self, rule_id: int, spec: RuleSpec, *, actor: Who | None = None
    ) -> tuple[dict[str, Any], int] | None:
        """Replace a rule's fields (the handler merged a PATCH into the stored rule)."""
        with self._db.write() as conn:
            fields = asdict(spec)
            sets = ", ".join(f"{name} = ?" for name in fields)
            cur = conn.execute(
                f"UPDATE alert_rules SET {sets}, updated_at = ? WHERE id = ? "
                f"RETURNING {RULE_COLUMNS}",
                (*fields.values(), now(), rule_id),
            )
            row = cur.fetchone()
            if row is None:
                return None
            rule = row_dict(cur, row)
            version = _bump(conn, int(rule["sensor_id"]))
            _audit(conn, actor, "rule.update", rule_id, fields)
        return _rule(rule), version

    def delete_rule(self, rule_id: int, *, actor: Who | None = None) -> int | None:
        """Delete a rule; its factory's new config version, None: no such rule."""
        with self._db.write() as conn:
            row = conn.execute(
                "DELETE FROM alert_rules WHERE id = ? RETURNING sensor_id", (rule_id,)
            ).fetchone()
            if row is None:
                return None
            _audit(conn, actor, "rule.delete", rule_id, {"sensor_id": int(row[0])})
            return _bump(conn, int(row[0]))

    def gateway_alert_rules(self, name: str) -> list[dict[str, Any]]:
        """The enabled rules of gateway ``name``'s factory, with each sensor's key.

        Read after the config version (hub.api.thresholds.gateway_config): a change between the
        two reads leaves the gateway with a version older than its rules, so it fetches again.
        """
        with self._db.reader() as conn:
            rows = dicts(
                conn.execute(
                    "SELECT r.id, s.key, r.condition, r.threshold, r.threshold_high, "
                    "r.severity, r.deadband, r.delay_s FROM alert_rules r "
                    "JOIN sensors s ON s.id = r.sensor_id "
                    "JOIN gateways g ON g.factory_id = s.factory_id "
                    "WHERE g.name = ? AND r.enabled = TRUE ORDER BY s.key, r.id",
                    (name,),
                )
            )
        return rows

    def rules_of_sensor_enabled(self, conn: Conn, sensor_id: int) -> list[dict[str, Any]]:
        """Inside a transaction: a sensor's enabled rules (to name the rule behind an alert)."""
        return dicts(
            conn.execute(
                f"SELECT {RULE_COLUMNS} FROM alert_rules WHERE sensor_id = ? AND enabled = TRUE "
                "ORDER BY id",
                (sensor_id,),
            )
        )

    def delete_sensor(self, conn: Conn, sensor_id: int) -> dict[str, int]:
        """A sensor's rules, in the deleting transaction (after the alerts naming them)."""
        cur = conn.execute("DELETE FROM alert_rules WHERE sensor_id = ?", (sensor_id,))
        return {"alert_rules": max(cur.rowcount, 0)}
