"""Alert rules at the edge: where they come from, and the alert lifecycle they drive.

* **Rules** = the defaults in agent.toml (``[rules."<key or + pattern>"]``, see
  :class:`agent.config.RuleConfig`) overlaid, per sensor, by the thresholds set at the hub
  (``GET /api/v1/gateways/{id}/config``). The hub's last answer is persisted with its version
  in the buffer's ``state`` table, so with the hub unreachable - also across restarts - the
  edge keeps using the last rules the hub sent (docs/reliability.md, "The edge decides alone").
* **RulesSync** fetches the hub's rules at start and whenever an ingest response names a
  ``config_version`` other than ours (so a change at the hub reaches the edge within one sync
  cycle), and every ``alerts.refresh_s`` in case the hub does not report versions.
* **Alerting** owns the Rust :class:`threshold_checker.RuleEngine`. Ingest calls
  :meth:`Alerting.derive` inside the transaction that commits a batch, so readings and the
  alerts they raise are stored together in the buffer (the ``alerts`` outbox, synced to the
  hub like readings), and then publishes each alert event on MQTT
  ``{alerts.topic_prefix}/{line}/{machine}/{sensor}`` at QoS 1 for local HMIs and actuators.

Open alerts are persisted (they are the open rows of the outbox) and restored into the engine
at start, so an excursion in progress over a restart stays one alert. Not persisted: the
previous reading the rate-of-change rule compares with (the first reading after a restart has
none) and a threshold alert's count of clear readings so far (it starts again at 0).
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Sequence

import httpx
import msgspec
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_result, wait_random_exponential

import threshold_checker as tc
from agent.buffer import AlertRow, Buffer, Reading
from agent.config import AgentConfig
from agent.mqtt import AlertPublisher
from agent.tls import hub_ssl_context
from shared.topics import split_key
from shared.wire import WireAlert

log = structlog.get_logger("agent.rules")

_STATE_VERSION = "rules_version"
_STATE_HUB = "rules_hub"
_STATE_HUB_ALERT = "rules_hub_alert"


class HubSensorRule(msgspec.Struct, frozen=True):
    """One sensor's thresholds as the hub sends them."""

    key: str
    min: float | None = None
    max: float | None = None
    deadband: float | None = None


class HubAlertRule(msgspec.Struct, frozen=True):
    """One of the hub's alert rules (the seeds' AlertRule) of a sensor, as the hub sends it.
    A sensor's rules make one alert ("rule") in the engine (threshold_checker.AlertRule)."""

    key: str
    condition: str
    threshold: float
    threshold_high: float | None = None
    severity: str = "WARNING"
    deadband: float = 0.0
    delay_s: float = 0.0
    id: int | None = None


class HubConfig(msgspec.Struct, frozen=True):
    gateway_id: str
    version: int
    sensors: list[HubSensorRule] = []
    # Hubs before alert rules send none; this agent's older versions ignore them.
    alert_rules: list[HubAlertRule] = []


class _HubConfigResponse(msgspec.Struct, frozen=True):
    data: HubConfig


_decode_config = msgspec.json.Decoder(_HubConfigResponse).decode


def _merge(base: tc.Rule | None, hub: HubSensorRule) -> tc.Rule:
    lo, hi = (base.min, base.max) if base is not None else (None, None)
    if hub.min is not None or hub.max is not None:
        lo, hi = hub.min, hub.max
    deadband = hub.deadband if hub.deadband is not None else (base.deadband if base else 0.0)
    clear_count = base.clear_count if base else 1
    max_rate = base.max_rate if base else None
    try:
        return tc.Rule(lo, hi, deadband, clear_count, max_rate)
    except ValueError:
        # e.g. the hub's deadband leaves no clear band for these bounds: keep the thresholds.
        return tc.Rule(lo, hi, 0.0, clear_count, max_rate)


class Rules:
    """The effective rules: agent.toml defaults overlaid by the hub's last config."""

    def __init__(self, cfg: AgentConfig, buffer: Buffer) -> None:
        self.buffer = buffer
        # agent.toml's rules, in an engine of their own only so that the engine decides which
        # of them applies to a sensor key the hub names (exact key, else the closest pattern).
        self._defaults = tc.RuleEngine({k: r.to_rule() for k, r in cfg.rules.items()})
        self.version = 0
        self.hub: list[HubSensorRule] = []
        self.hub_alert: list[HubAlertRule] = []
        state = buffer.state()
        if _STATE_HUB in state:
            try:
                self.hub = msgspec.json.decode(state[_STATE_HUB], type=list[HubSensorRule])
                self.hub_alert = msgspec.json.decode(
                    state.get(_STATE_HUB_ALERT, "[]"), type=list[HubAlertRule]
                )
                self.version = int(state.get(_STATE_VERSION, "0"))
            except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
                log.error("persisted hub rules unreadable; using agent.toml's", error=str(exc))

    def effective(self) -> dict[str, tc.Rule]:
        rules = self._defaults.rules()
        for h in self.hub:
            try:
                split_key(h.key)
                rules[h.key] = _merge(self._defaults.rule_for(h.key), h)
            except ValueError as exc:
                log.warning("ignoring hub rule", key=h.key, error=str(exc))
        return rules

    def alert_rules(self) -> dict[str, list[tc.AlertRule]]:
        """The hub's alert rules for the engine, by sensor key (a rule the engine refuses is
        skipped with a warning; the hub checks them, so that takes a hub of another version)."""
        out: dict[str, list[tc.AlertRule]] = {}
        for h in self.hub_alert:
            try:
                split_key(h.key)
                rule = tc.AlertRule(
                    h.condition,  # type: ignore[arg-type]
                    h.threshold,
                    h.threshold_high,
                    h.severity,  # type: ignore[arg-type]
                    h.deadband,
                    h.delay_s,
                    h.id,
                )
            except ValueError as exc:
                log.warning("ignoring hub alert rule", key=h.key, id=h.id, error=str(exc))
                continue
            out.setdefault(h.key, []).append(rule)
        return out

    def apply_hub(self, config: HubConfig) -> bool:
        """Take (and persist) the hub's config; True when it changed the rules."""
        changed = (
            config.version != self.version
            or config.sensors != self.hub
            or config.alert_rules != self.hub_alert
        )
        if not changed:
            return False
        self.buffer.set_state(
            **{
                _STATE_VERSION: config.version,
                _STATE_HUB: msgspec.json.encode(config.sensors).decode(),
                _STATE_HUB_ALERT: msgspec.json.encode(config.alert_rules).decode(),
            }
        )
        self.hub, self.version = list(config.sensors), config.version
        self.hub_alert = list(config.alert_rules)
        return True


def _finite(x: float) -> float:
    # The wire wants finite numbers; an infinite rate (or value) is "as bad as it gets".
    return x if math.isfinite(x) else math.copysign(1.7976931348623157e308, x)


def wire_alert(a: AlertRow) -> WireAlert:
    return WireAlert(
        id=a.id,
        key=a.key,
        rule=a.rule,
        breach_type=a.breach_type,
        severity=a.severity,
        threshold_value=_finite(a.threshold_value),
        value=_finite(a.value),
        opened_at=a.opened_at,
        closed_at=a.closed_at,
        reading_seq=a.reading_seq,
        rule_id=a.rule_id,
    )


class Alerting:
    """The rule engine, its persisted open alerts, and publishing alert events on MQTT."""

    def __init__(
        self,
        cfg: AgentConfig,
        buffer: Buffer,
        rules: Rules,
        publisher: AlertPublisher | None = None,
    ) -> None:
        self.cfg = cfg
        self.buffer = buffer
        self.rules = rules
        self.engine = tc.RuleEngine()
        # Alert events go out on MQTT through this (agent.mqtt.Link); None: logged only.
        self.publisher = publisher
        self.published = 0
        self._start()

    def _start(self) -> None:
        self.engine.set_rules(self.rules.effective())
        self.engine.set_alert_rules(self.rules.alert_rules())
        self.engine.restore(
            tc.AlertEvent(
                kind="open",
                key=a.key,
                # Stored by us from an AlertEvent, so they hold the engine's own literals.
                breach_type=a.breach_type,  # type: ignore[arg-type]
                severity=a.severity,  # type: ignore[arg-type]
                threshold_value=a.threshold_value,
                value=a.value,
                ts=a.opened_at,
                opened_at=a.opened_at,
                opened_seq=a.reading_seq,
                rule=a.rule,  # type: ignore[arg-type]
                rule_id=a.rule_id,
            )
            for a in self.buffer.open_alerts()
        )
        # Alerts left open under a rule that is gone now: close them.
        closed = self.engine.set_rules(self.rules.effective())
        closed += self.engine.set_alert_rules(self.rules.alert_rules())
        self.buffer.store_alert_events(closed)
        if closed or self.engine.open_alerts():
            log.info("alerts restored", open=len(self.engine.open_alerts()), closed=len(closed))

    def derive(
        self, seqs: Sequence[int | None], readings: Sequence[Reading]
    ) -> list[tc.AlertEvent]:
        """The alert events of a batch (called inside the buffer's append transaction)."""
        if not len(self.engine):
            return []
        return self.engine.process(
            [(s, r.key, r.ts, r.value) for s, r in zip(seqs, readings, strict=True)]
        )

    def apply_rules(self) -> None:
        """Load the current effective rules into the engine; store+publish forced closes."""
        closed = self.engine.set_rules(self.rules.effective())
        closed += self.engine.set_alert_rules(self.rules.alert_rules())
        self.publish(self.buffer.store_alert_events(closed))
        log.info(
            "alert rules applied",
            version=self.rules.version,
            rules=len(self.engine),
            closed=len(closed),
        )

    def message(self, a: AlertRow) -> tuple[str, bytes]:
        line, machine, sensor = split_key(a.key)
        topic = f"{self.cfg.alerts.topic_prefix}/{line}/{machine}/{sensor}"
        body = {
            "id": a.id,
            "gateway_id": self.cfg.gateway_id,
            "event": a.event,
            "key": a.key,
            "rule": a.rule,
            "breach_type": a.breach_type,
            "severity": a.severity,
            "threshold_value": _finite(a.threshold_value),
            "value": _finite(a.value),
            "ts": a.ts,
            "opened_at": a.opened_at,
            "closed_at": a.closed_at,
            "reading_seq": a.reading_seq,
            "rule_id": a.rule_id,
        }
        return topic, json.dumps(body, separators=(",", ":")).encode()

    def publish(self, alerts: Sequence[AlertRow]) -> None:
        """Publish alert events (best effort on the current connection: the outbox, not MQTT,
        is what reaches the hub)."""
        if not alerts or not self.cfg.alerts.enabled:
            return
        for a in alerts:
            log.info(
                "alert",
                kind=a.event,
                key=a.key,
                rule=a.rule,
                severity=a.severity,
                value=a.value,
                id=a.id,
            )
            if self.publisher is None:
                continue
            topic, body = self.message(a)
            try:
                if self.publisher.publish(topic, body):
                    self.published += 1
            except Exception as exc:  # a dropped connection must not stop ingest
                log.warning("alert publish failed", topic=topic, error=str(exc))


class RulesSync:
    """Keeps the rules in step with the hub: fetch at start, on a new config_version, and
    every ``alerts.refresh_s``; with the hub unreachable the persisted rules stay in force."""

    def __init__(
        self,
        cfg: AgentConfig,
        rules: Rules,
        alerting: Alerting,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.cfg = cfg
        self.rules = rules
        self.alerting = alerting
        self.transport = transport
        self.url = f"{cfg.hub.url.rstrip('/')}/api/v1/gateways/{cfg.gateway_id}/config"
        self.wanted = asyncio.Event()
        self.fetched = 0

    def on_config_version(self, version: int) -> None:
        """From the sync: the hub's current rules version (0: the hub does not say)."""
        if version and version != self.rules.version:
            self.wanted.set()

    async def fetch_once(self, http: httpx.AsyncClient) -> bool:
        """One GET; True when the hub answered with a usable config."""
        try:
            resp = await http.get(self.url)
        except httpx.TransportError as exc:
            log.debug("hub config unreachable", error=f"{type(exc).__name__}: {exc}")
            return False
        if resp.status_code != 200:
            log.warning("hub config request refused", status=resp.status_code, body=resp.text[:200])
            return False
        try:
            config = _decode_config(resp.content).data
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("hub config unreadable", error=str(exc))
            return False
        self.fetched += 1
        if self.rules.apply_hub(config):
            self.alerting.apply_rules()
        return True

    async def fetch(self, http: httpx.AsyncClient, stopping: asyncio.Event) -> bool:
        """Fetch until the hub answers with a usable config (True) or we stop (False).

        Failed attempts back off as the sync does (random waits in ``[backoff_min_s,
        min(backoff_max_s, backoff_min_s * 2^n)]``); a new config_version cuts a wait short.
        """
        h = self.cfg.hub
        retrying = AsyncRetrying(
            retry=retry_if_result(lambda ok: not ok),
            wait=wait_random_exponential(
                multiplier=h.backoff_min_s, min=h.backoff_min_s, max=h.backoff_max_s
            ),
            stop=lambda _state: stopping.is_set(),
            sleep=lambda seconds: _wait_any(stopping, self.wanted, seconds),
            before_sleep=_log_retry,
            retry_error_callback=lambda _state: False,
        )
        return await retrying(self._attempt, http, stopping)

    async def _attempt(self, http: httpx.AsyncClient, stopping: asyncio.Event) -> bool:
        if stopping.is_set():
            return False  # woken from a backoff wait by shutdown: no request, stop retrying
        self.wanted.clear()  # this attempt answers every version announced so far
        return await self.fetch_once(http)

    async def run(self, stopping: asyncio.Event) -> None:
        h = self.cfg.hub
        headers = {"Authorization": f"Bearer {h.token}"}
        async with httpx.AsyncClient(
            transport=self.transport,
            timeout=httpx.Timeout(h.timeout_s),
            headers=headers,
            verify=hub_ssl_context(h),  # [hub] ca_file / client_cert (agent.tls)
        ) as http:
            while await self.fetch(http, stopping):
                await _wait_any(stopping, self.wanted, self.cfg.alerts.refresh_s)


def _log_retry(state: RetryCallState) -> None:
    log.debug(
        "hub config fetch failed, retrying",
        attempt=state.attempt_number,
        retry_in_s=round(state.upcoming_sleep, 2),
    )


async def _wait_any(stopping: asyncio.Event, wanted: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(stopping.wait()), asyncio.ensure_future(wanted.wait())]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
