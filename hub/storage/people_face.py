"""The writes people make: who may call the hub (gateways and tokens), thresholds and alert
rules, alarm actions, operators' edits of the plant's model, back-fill, the change log,
console sessions and sign-ins.

:class:`hub.storage.Storage` is this, the read side (hub.storage.read_face) and what the
machines do (ingest, rollups and retention, anomaly scans, edge and fleet alerts, webhooks:
hub.storage.interface). Each method is a one-line delegation to the concern that owns it;
the concerns are built by ``Storage._assemble``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hub.auth import Role
from hub.storage.access import Access
from hub.storage.alerts import Actor, Alerts
from hub.storage.audit import Audit, AuditEntry, Who
from hub.storage.bulk import Backfill, BulkRow
from hub.storage.catalog import Catalog
from hub.storage.crud import Crud
from hub.storage.model import SessionRow, Thresholds
from hub.storage.rules import Rules, RuleSpec


class PeopleFace:
    # The concerns the writes go to (set by Storage._assemble).
    access: Access
    catalog: Catalog
    rules: Rules
    alerts: Alerts
    crud: Crud
    backfill: Backfill
    audit: Audit

    # -- who may call the hub: gateways and tokens (hub.storage.access) --------------------

    def add_gateway(self, name: str, factory: str, token_hash: str, *, rotate: bool = False) -> int:
        """Register gateway ``name`` in ``factory`` with a token; returns the gateway row id.

        ``rotate``: the gateway may exist (in the same factory); its old tokens are revoked.
        Conflict when it exists and ``rotate`` is false, or exists in another factory.
        """
        return self.access.add_gateway(name, factory, token_hash, rotate=rotate)

    def add_token(
        self, role: Role, token_hash: str, factories: Sequence[str] = (), name: str | None = None
    ) -> int:
        return self.access.add_token(role, token_hash, factories, name)

    def list_tokens(self) -> list[dict[str, Any]]:
        """Every token's id, name, role, gateway, creation time and state; never the hash."""
        return self.access.list_tokens()

    def revoke_token(self, token_id: int) -> bool:
        """Revoke one token (its next request gets 401); False if there is no such token."""
        return self.access.revoke_token(token_id)

    def revoke_gateway(self, name: str) -> bool:
        """Revoke gateway ``name`` and all its tokens; False if there is no such gateway.

        Its data stays. ``add_gateway(..., rotate=True)`` re-enables it with a new token.
        """
        return self.access.revoke_gateway(name)

    # -- thresholds and alert rules (hub.storage.catalog, hub.storage.rules) ---------------

    def set_thresholds(
        self, sensor_id: int, thresholds: Thresholds, *, actor: Who | None = None
    ) -> int | None:
        """Set a sensor's thresholds; returns its factory's config version (None: no sensor).

        The version moves only when something changed, so repeating a PUT is a no-op.
        ``actor``: who asked; the change log's row commits with the change.
        """
        return self.catalog.set_thresholds(sensor_id, thresholds, actor=actor)

    def add_rule(
        self, sensor_id: int, spec: RuleSpec, *, actor: Who | None = None
    ) -> tuple[dict[str, Any], int] | None:
        """(the new rule, its factory's config version); None: no such sensor. ``actor``:
        recorded in the change log in the same transaction (so for update and delete)."""
        return self.rules.add_rule(sensor_id, spec, actor=actor)

    def update_rule(
        self, rule_id: int, spec: RuleSpec, *, actor: Who | None = None
    ) -> tuple[dict[str, Any], int] | None:
        return self.rules.update_rule(rule_id, spec, actor=actor)

    def delete_rule(self, rule_id: int, *, actor: Who | None = None) -> int | None:
        """The factory's new config version; None: no such rule."""
        return self.rules.delete_rule(rule_id, actor=actor)

    # -- alarm actions (hub.storage.alerts) ------------------------------------------------

    def acknowledge_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """None: no such alert; Conflict: acknowledged already."""
        return self.alerts.acknowledge_alert(alert_id, actor, comment)

    def shelve_alert(
        self, alert_id: int, actor: Actor, until: float, comment: str | None
    ) -> dict[str, Any] | None:
        """None: no such alert; Conflict: the alert is cleared."""
        return self.alerts.shelve_alert(alert_id, actor, until, comment)

    def unshelve_alert(
        self, alert_id: int, actor: Actor, comment: str | None
    ) -> dict[str, Any] | None:
        """None: no such alert; Conflict: not shelved."""
        return self.alerts.unshelve_alert(alert_id, actor, comment)

    # -- operators' edits (hub.storage.crud) -----------------------------------------------
    # Each change commits with its audit row; Conflict: a name taken or children left;
    # crud.Unknown: the body names a parent that does not exist. None/False: no such row.

    def create_factory(self, name: str, location: str | None, actor: Who) -> dict[str, Any]:
        return self.crud.create_factory(name, location, actor)

    def update_factory(
        self, factory_id: int, changes: dict[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        return self.crud.update_factory(factory_id, changes, actor)

    def delete_factory(self, factory_id: int, actor: Who) -> bool:
        return self.crud.delete_factory(factory_id, actor)

    def create_machine(self, fields: dict[str, Any], actor: Who) -> dict[str, Any]:
        return self.crud.create_machine(fields, actor)

    def update_machine(
        self, machine_id: int, changes: dict[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        return self.crud.update_machine(machine_id, changes, actor)

    def delete_machine(self, machine_id: int, actor: Who) -> bool:
        return self.crud.delete_machine(machine_id, actor)

    def create_sensor(self, fields: dict[str, Any], actor: Who) -> dict[str, Any]:
        return self.crud.create_sensor(fields, actor)

    def update_sensor(
        self, sensor_id: int, changes: dict[str, Any], actor: Who
    ) -> dict[str, Any] | None:
        return self.crud.update_sensor(sensor_id, changes, actor)

    def delete_sensor(self, sensor_id: int, actor: Who) -> dict[str, int] | None:
        """Delete a sensor with its readings, rollups, anomalies, rules and alerts; how many
        rows of each table went."""
        return self.crud.delete_sensor(sensor_id, actor)

    # -- back-fill and the change log (hub.storage.bulk, hub.storage.audit) ----------------

    def bulk_insert(self, rows: Sequence[BulkRow], actor: Who) -> int:
        """Store (sensor_id, ts, value) rows once per (sensor, ts); how many were new.
        bulk.UnknownSensors (nothing stored) when a sensor id does not exist."""
        return self.backfill.bulk_insert(rows, actor)

    def record_audit(self, entry: AuditEntry) -> None:
        """Record a change already committed (hub.storage.audit.write_entry records one
        inside the change's own transaction)."""
        return self.audit.record_audit(entry)

    # -- console sessions (hub.storage.access, hub.web.session) ----------------------------

    def create_session(
        self, id_hash: str, token_hash: str, csrf: str, expires_at: float, max_per_token: int
    ) -> int:
        return self.access.create_session(id_hash, token_hash, csrf, expires_at, max_per_token)

    def session_by_hash(self, id_hash: str) -> SessionRow | None:
        return self.access.session_by_hash(id_hash)

    def delete_session(self, id_hash: str) -> bool:
        return self.access.delete_session(id_hash)

    # -- console sign-in throttle (hub.storage.access, hub.web.throttle) -------------------

    def sign_in_attempt(
        self, keys: Sequence[str], at: float, window_s: float
    ) -> list[tuple[int, float]]:
        return self.access.sign_in_attempt(keys, at, window_s)

    def sign_in_forgive(self, counted: Sequence[str], cleared: Sequence[str]) -> None:
        return self.access.sign_in_forgive(counted, cleared)
