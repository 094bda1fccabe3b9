"""Factories, gateways and tokens: the admin writes and the lookup behind every request."""

from __future__ import annotations

from typing import Any

from hub.auth import Role, TokenRecord
from hub.storage.model import Conflict
from hub.storage.sqlbase import Conn, SqlStorage
from shared.timeutil import now


def factory_id(conn: Conn, name: str) -> int:
    """The id of factory ``name``, created if new."""
    conn.execute(
        "INSERT INTO factories (name, created_at) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
        (name, now()),
    )
    row = conn.execute("SELECT id FROM factories WHERE name = ?", (name,)).fetchone()
    return int(row[0])


class TokensMixin(SqlStorage):
    def add_gateway(self, name: str, factory: str, token_hash: str, *, rotate: bool = False) -> int:
        with self._write() as conn:
            row = conn.execute(
                "SELECT g.id, f.name FROM gateways g JOIN factories f ON f.id = g.factory_id "
                "WHERE g.name = ?",
                (name,),
            ).fetchone()
            if row is not None:
                gateway_id, current_factory = int(row[0]), str(row[1])
                if not rotate:
                    raise Conflict(f"gateway {name!r} already exists (factory {current_factory!r})")
                if current_factory != factory:
                    raise Conflict(
                        f"gateway {name!r} belongs to factory {current_factory!r}, not {factory!r}"
                    )
                conn.execute("UPDATE tokens SET revoked = TRUE WHERE gateway_id = ?", (gateway_id,))
                conn.execute("UPDATE gateways SET revoked = FALSE WHERE id = ?", (gateway_id,))
            else:
                fid = factory_id(conn, factory)
                gateway_id = int(
                    conn.execute(
                        "INSERT INTO gateways (name, factory_id, created_at) VALUES (?, ?, ?) "
                        "RETURNING id",
                        (name, fid, now()),
                    ).fetchone()[0]
                )
            conn.execute(
                "INSERT INTO tokens (hash, role, gateway_id, created_at) "
                "VALUES (?, 'gateway', ?, ?)",
                (token_hash, gateway_id, now()),
            )
        return gateway_id

    def add_token(self, role: Role, token_hash: str) -> int:
        if role == "gateway":
            raise ValueError("gateway tokens are made by add_gateway")
        with self._write() as conn:
            row = conn.execute(
                "INSERT INTO tokens (hash, role, created_at) VALUES (?, ?, ?) RETURNING id",
                (token_hash, role, now()),
            ).fetchone()
            return int(row[0])

    def token_by_hash(self, token_hash: str) -> TokenRecord | None:
        row = self._fetchone(
            "SELECT t.id, t.hash, t.role, t.revoked, g.id, g.name, g.factory_id, g.revoked "
            "FROM tokens t LEFT JOIN gateways g ON g.id = t.gateway_id WHERE t.hash = ?",
            (token_hash,),
        )
        if row is None:
            return None
        return TokenRecord(
            id=row[0],
            hash=row[1],
            role=row[2],
            revoked=bool(row[3]) or bool(row[7]),
            gateway_id=row[4],
            gateway_name=row[5],
            factory_id=row[6],
        )

    def list_tokens(self) -> list[dict[str, Any]]:
        rows = self._all_dicts(
            "SELECT t.id, t.role, g.name AS gateway, t.created_at, "
            "(t.revoked OR coalesce(g.revoked, FALSE)) AS revoked "
            "FROM tokens t LEFT JOIN gateways g ON g.id = t.gateway_id ORDER BY t.id"
        )
        for row in rows:
            row["revoked"] = bool(row["revoked"])
        return rows

    def revoke_token(self, token_id: int) -> bool:
        with self._write() as conn:
            cur = conn.execute("UPDATE tokens SET revoked = TRUE WHERE id = ?", (token_id,))
            return cur.rowcount > 0

    def revoke_gateway(self, name: str) -> bool:
        with self._write() as conn:
            row = conn.execute("SELECT id FROM gateways WHERE name = ?", (name,)).fetchone()
            if row is None:
                return False
            conn.execute("UPDATE gateways SET revoked = TRUE WHERE id = ?", (row[0],))
            conn.execute("UPDATE tokens SET revoked = TRUE WHERE gateway_id = ?", (row[0],))
        return True
