// The operator console's pages: each fills itself from the JSON API (/api/v1) with the
// session cookie and keeps fresh by polling. Writes send the page's CSRF token in
// X-CSRF-Token. Nothing here keeps a token: the session cookie is HttpOnly, and nothing is
// written to localStorage or sessionStorage. DOM built with textContent only: names come
// from the field.
"use strict";

(function () {
  const body = document.body;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const role = body.dataset.role || "";
  const pollMs = Number(body.dataset.pollMs) || 5000;
  const canAck = role === "operator" || role === "admin";
  const isAdmin = role === "admin";
  const itemId = body.dataset.id;

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  let leaving = false;
  // Signing out ends the session before the server's redirect arrives: a poll answered 401
  // meanwhile must not send the page to "session ended" instead.
  const signout = document.querySelector("form.signout");
  if (signout) signout.addEventListener("submit", () => { leaving = true; });

  async function api(method, path, payload) {
    const headers = { Accept: "application/json" };
    const init = { method, credentials: "same-origin", headers, cache: "no-store" };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = csrf;
      if (payload !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(payload);
      }
    }
    const res = await fetch("/api/v1" + path, init);
    if (res.status === 401) {
      // The session ended (expired, signed out elsewhere, token revoked). Once: a page that
      // asks in parallel gets several 401s, and a second navigation would abort the first.
      if (!leaving) window.location.assign("/login?expired=1");
      leaving = true;
      throw new ApiError(401, "signed out");
    }
    if (res.status === 204) return null;
    const doc = await res.json();
    if (!res.ok) {
      throw new ApiError(res.status, doc.error ? doc.error.message : res.statusText);
    }
    return doc;
  }

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k.startsWith("data-")) node.setAttribute(k, v);
      else if (k === "text") node.textContent = v;
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // One date format on every page: ISO 8601, 24 h, the browser's local time to the second
  // (2026-12-07 14:05:09); the exact instant is in the cell's title.
  const pad = (n) => String(n).padStart(2, "0");
  function fmtTime(iso) {
    if (!iso) return "never";
    const d = new Date(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
      `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  // A duration as h:mm:ss (d added past a day): an alarm's time active.
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    const days = Math.floor(s / 86400);
    const hms = `${Math.floor((s % 86400) / 3600)}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
    return days ? `${days} d ${hms}` : hms;
  }

  // The roll-up's alarm state of a sensor, machine or factory (GET /alarm-summary): the
  // worst active severity and the counts, with data- attributes a test can read.
  function alarmCell(al) {
    const td = el("td", {
      class: "alarm", "data-worst": al.worst_severity || "none", "data-active": al.active,
      "data-unack": al.unacknowledged, "data-shelved": al.shelved,
    });
    if (al.active) {
      td.append(el("span", { class: "badge sev-" + al.worst_severity, text: al.worst_severity }),
        ` ${al.active} active`);
    } else {
      td.append(el("span", { class: "badge ok", text: "normal" }));
    }
    if (al.unacknowledged) td.append(`, ${al.unacknowledged} unacknowledged`);
    if (al.shelved) td.append(`, ${al.shelved} shelved`);
    return td;
  }
  const alarmSig = (al) => [al.worst_severity, al.active, al.unacknowledged, al.shelved];

  function fmtAge(seconds) {
    if (seconds === null || seconds === undefined) return "";
    if (seconds < 90) return Math.round(seconds) + " s ago";
    if (seconds < 5400) return Math.round(seconds / 60) + " min ago";
    if (seconds < 172800) return Math.round(seconds / 3600) + " h ago";
    return Math.round(seconds / 86400) + " d ago";
  }

  function fmtNum(v) {
    if (v === null || v === undefined) return "–";
    return Number(v).toLocaleString(undefined, { maximumFractionDigits: 3 });
  }

  function setStatus(text, isError) {
    const node = document.getElementById("status");
    if (!node) return;
    node.textContent = text || "";
    node.classList.toggle("error", Boolean(isError));
  }

  // Replace a table body's rows, keyed by id, leaving a row alone while the operator is
  // typing in it (a comment half written must survive the next poll).
  function syncRows(tbody, items, keyOf, sigOf, build) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.key, tr);
    const busy = (tr) =>
      tr.contains(document.activeElement) ||
      tr.querySelector("details[open]") !== null ||
      Array.from(tr.querySelectorAll("input")).some((i) => i.type !== "checkbox" && i.value !== "");
    let previous = null;
    for (const item of items) {
      const key = String(keyOf(item));
      const sig = sigOf(item);
      let tr = existing.get(key);
      existing.delete(key);
      if (!tr || (tr.dataset.sig !== sig && !busy(tr))) {
        const fresh = build(item);
        fresh.dataset.key = key;
        fresh.dataset.sig = sig;
        if (tr) tr.replaceWith(fresh);
        tr = fresh;
      }
      const want = previous ? previous.nextSibling : tbody.firstChild;
      if (want !== tr) tbody.insertBefore(tr, want);
      previous = tr;
    }
    for (const tr of existing.values()) tr.remove();
  }

  // Run fn now and then every pollMs; body[data-refreshes] counts the rounds done.
  function every(fn) {
    async function tick() {
      try {
        await fn();
        setStatus("");
      } catch (err) {
        if (err.status !== 401) setStatus("Could not refresh: " + err.message, true);
      } finally {
        body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
        window.setTimeout(tick, pollMs);
      }
    }
    tick();
  }

  async function activeCount() {
    // Shelved alarms are suppressed: they are not counted here.
    const doc = await api("GET", "/alerts?state=active&acknowledged=false&shelved=false&per_page=1");
    const node = document.getElementById("active-count");
    if (node) node.textContent = doc.meta.total ? String(doc.meta.total) : "";
  }

  // -- pages ----------------------------------------------------------------------------

  function fleet() {
    const tbody = document.querySelector("#fleet tbody");
    const plants = document.querySelector("#fleet-factories tbody");
    const machines = document.querySelector("#fleet-machines tbody");
    every(async () => {
      const [doc, sum] = await Promise.all([
        api("GET", "/gateways?per_page=1000"),
        api("GET", "/alarm-summary"),
      ]);
      const rows = doc.data;
      const online = rows.filter((g) => g.status === "online").length;
      document.getElementById("fleet-summary").textContent =
        `${rows.length} gateways, ${online} online, ${rows.length - online} not`;
      const s = sum.data;
      const inAlarm = s.factories.filter((f) => f.alarms.in_alarm).length;
      document.getElementById("alarm-summary").textContent = s.alarms.in_alarm
        ? `${inAlarm} of ${s.factories.length} factories in alarm: ${s.alarms.active} active ` +
          `(worst ${s.alarms.worst_severity}), ${s.alarms.unacknowledged} unacknowledged`
        : `No active alarms (${s.alarms.unacknowledged} unacknowledged, ${s.alarms.shelved} shelved)`;
      syncRows(plants, s.factories, (f) => f.id, (f) => JSON.stringify([f.name, alarmSig(f.alarms)]),
        (f) => el("tr", { "data-factory": f.id, class: f.alarms.in_alarm ? "in-alarm" : null },
          el("td", {}, el("a", { href: `/factories/${f.id}` }, f.name)),
          alarmCell(f.alarms)));
      syncRows(machines, s.machines, (m) => m.id,
        (m) => JSON.stringify([m.name, m.factory, alarmSig(m.alarms)]),
        (m) => el("tr", { "data-machine": m.id, class: m.alarms.in_alarm ? "in-alarm" : null },
          el("td", {}, el("a", { href: `/machines/${m.id}` }, m.name)),
          el("td", {}, el("a", { href: `/factories/${m.factory_id}` }, m.factory)),
          el("td", {}, m.line || ""),
          alarmCell(m.alarms)));
      syncRows(
        tbody,
        rows,
        (g) => g.id,
        (g) => JSON.stringify([g.status, g.last_seen, g.backlog, g.dropped, g.dead_letters,
          g.agent_version]),
        (g) =>
          el("tr", { "data-gateway": g.id },
            el("td", {}, g.name),
            el("td", {}, g.factory),
            el("td", {}, el("span", { class: "badge " + g.status, text: g.status.replace("_", " ") })),
            el("td", { title: g.last_seen || "" }, g.last_seen ? fmtAge(g.last_seen_age_s) : "never"),
            el("td", { class: "num" }, fmtNum(g.backlog)),
            el("td", { class: "num" }, fmtNum(g.dropped)),
            el("td", { class: "num" }, fmtNum(g.dead_letters)),
            el("td", {}, g.agent_version || "–"))
      );
      await activeCount();
    });
  }

  function factories() {
    const tbody = document.querySelector("#factories tbody");
    every(async () => {
      const doc = await api("GET", "/factories?per_page=1000");
      syncRows(tbody, doc.data, (f) => f.id, (f) => JSON.stringify([f.name, f.location]),
        (f) => el("tr", {},
          el("td", {}, el("a", { href: `/factories/${f.id}` }, f.name)),
          el("td", {}, f.location || "")));
      await activeCount();
    });
  }

  function crumbs(parts) {
    const nav = document.getElementById("crumbs");
    nav.replaceChildren(el("a", { href: "/factories" }, "Factories"));
    for (const [href, text] of parts) nav.append(" › ", el("a", { href }, text));
  }

  function factory() {
    const tbody = document.querySelector("#machines tbody");
    every(async () => {
      const [f, doc] = await Promise.all([
        api("GET", `/factories/${itemId}`),
        api("GET", `/alarm-summary?factory_id=${itemId}`),
      ]);
      document.getElementById("title").textContent = f.data.name;
      crumbs([[`/factories/${f.data.id}`, f.data.name]]);
      syncRows(tbody, doc.data.machines, (m) => m.id,
        (m) => JSON.stringify([m.name, m.line, m.type, m.status, alarmSig(m.alarms)]),
        (m) => el("tr", { "data-machine": m.id, class: m.alarms.in_alarm ? "in-alarm" : null },
          el("td", {}, el("a", { href: `/machines/${m.id}` }, m.name)),
          el("td", {}, m.line || ""),
          el("td", {}, m.type || ""),
          el("td", {}, m.status || ""),
          alarmCell(m.alarms)));
      await activeCount();
    });
  }

  function machine() {
    const tbody = document.querySelector("#sensors tbody");
    let named = false;
    every(async () => {
      if (!named) {
        const m = (await api("GET", `/machines/${itemId}`)).data;
        document.getElementById("title").textContent = m.name;
        crumbs([[`/factories/${m.factory_id}`, m.factory], [`/machines/${m.id}`, m.name]]);
        named = true;
      }
      const doc = await api("GET", `/alarm-summary?machine_id=${itemId}`);
      syncRows(tbody, doc.data.sensors, (s) => s.id,
        (s) => JSON.stringify([s.name, s.unit, s.value, s.time, s.thresholds, s.stale,
          alarmSig(s.alarms)]),
        (s) => el("tr", { "data-sensor": s.id, class: s.alarms.in_alarm ? "in-alarm" : null },
          el("td", {}, el("a", { href: `/sensors/${s.id}` }, s.name)),
          el("td", {}, s.key),
          el("td", { class: "num value", title: s.time || "no reading yet" },
            fmtNum(s.value)),
          el("td", {}, s.unit || ""),
          el("td", { class: "num" }, fmtNum(s.thresholds.min)),
          el("td", { class: "num" }, fmtNum(s.thresholds.max)),
          alarmCell(s.alarms),
          el("td", {}, s.stale ? el("span", { class: "badge offline", text: "stale" }) : "")));
      await activeCount();
    });
  }

  function alertSource(a) {
    if (a.sensor_id !== null && a.sensor_id !== undefined) {
      return el("a", { href: `/sensors/${a.sensor_id}` }, a.sensor_key || `sensor ${a.sensor_id}`);
    }
    return document.createTextNode(`gateway ${a.gateway_name || a.gateway_id || ""}`);
  }

  // Who acted, as people know them: a person's full name (or user name), a token's label,
  // a gateway's id, else the role and token id.
  function byText(who) {
    if (!who) return "";
    const known = who.display || who.name;
    const id = who.token_id === null || who.token_id === undefined ? "" : ` #${who.token_id}`;
    return known ? ` by ${known} (${who.role}${id})` : ` by ${who.role}${id}`;
  }

  function alertState(a) {
    const parts = [a.state === "active" ? "active" : "cleared"];
    if (a.acknowledged) parts.push("acknowledged" + byText(a.acknowledged_by));
    if (a.shelved) parts.push("shelved until " + fmtTime(a.shelved_until));
    if (a.out_of_service) {
      // Suppressed: its sensor (or the sensor's machine) is out of service; say why.
      const machine = a.out_of_service_machine_status;
      const why = machine ? `machine ${machine}` : a.out_of_service_comment;
      parts.push("out of service" + (why ? `: ${why}` : ""));
    }
    // The hub's own marks (ISA-18.2 nuisance alarms): toggling often, or standing too long.
    if (a.chattering) parts.push("chattering");
    if (a.stale) parts.push("stale");
    return parts.join(", ");
  }

  function alertActions(a, refresh) {
    const td = el("td", { class: "actions" });
    const comment = el("input", { name: "comment", placeholder: "comment", maxlength: "2000" });
    const act = (path, payload) => async (event) => {
      event.preventDefault();
      try {
        await api("POST", `/alerts/${a.id}/${path}`, payload());
        // Done: the row is no longer being edited, so the next refresh redraws it.
        comment.value = "";
        if (td.contains(document.activeElement)) document.activeElement.blur();
        await refresh();
      } catch (err) {
        setStatus(`Alert ${a.id}: ${err.message}`, true);
      }
    };
    const text = () => comment.value.trim() || null;
    if (!a.acknowledged) {
      const ack = el("button", { type: "button", class: "ack", "data-action": "ack" }, "Acknowledge");
      ack.addEventListener("click", act("ack", () => ({ comment: text() })));
      td.append(ack);
    }
    if (a.state === "active" && !a.shelved) {
      const duration = el("select", { name: "duration_s" },
        el("option", { value: "900" }, "15 min"),
        el("option", { value: "3600" }, "1 h"),
        el("option", { value: "28800" }, "8 h"),
        el("option", { value: "86400" }, "24 h"));
      const shelve = el("button", { type: "button", class: "shelve", "data-action": "shelve" }, "Shelve");
      shelve.addEventListener("click",
        act("shelve", () => ({ duration_s: Number(duration.value), comment: text() })));
      td.append(" ", duration, " ", shelve);
    }
    if (a.shelved) {
      const unshelve = el("button", { type: "button", "data-action": "unshelve" }, "Unshelve");
      unshelve.addEventListener("click", act("unshelve", () => ({ comment: text() })));
      td.append(" ", unshelve);
    }
    td.prepend(comment, " ");
    return td;
  }

  // The alert's journal, fetched when its "history" is opened: who did what, when, why.
  function journal(a) {
    const list = el("ol", { class: "journal" });
    const box = el("details", { "data-journal": a.id }, el("summary", {}, "history"), list);
    box.addEventListener("toggle", async () => {
      if (!box.open) return;
      try {
        const doc = await api("GET", `/alerts/${a.id}`);
        list.replaceChildren(
          ...doc.data.journal.map((e) =>
            el("li", {},
              `${fmtTime(e.at)} ${e.action}`,
              byText(e.by),
              e.comment ? `: ${e.comment}` : ""))
        );
      } catch (err) {
        setStatus(`Alert ${a.id}: ${err.message}`, true);
      }
    });
    return box;
  }

  function alertRow(a, withActions, refresh, withSource) {
    const tr = el("tr", { class: `sev-${a.severity} ${a.state}`, "data-alert": a.id },
      el("td", {}, String(a.id)),
      el("td", {}, el("span", { class: "badge sev-" + a.severity, text: a.severity })),
      el("td", {}, a.kind.replace(/_/g, " ")),
      withSource ? el("td", {}, alertSource(a)) : null,
      el("td", { title: a.opened_at }, fmtTime(a.opened_at)),
      el("td", { class: "num" }, fmtNum(a.value)),
      el("td", { class: "state" }, alertState(a), " ", journal(a)));
    if (withActions) tr.append(a.state === "active" || !a.acknowledged ? alertActions(a, refresh) : el("td"));
    return tr;
  }

  const alertSig = (a) =>
    JSON.stringify([a.state, a.acknowledged, a.shelved, a.shelved_until, a.severity, a.value,
      a.out_of_service, a.out_of_service_comment, a.out_of_service_machine_status,
      a.chattering, a.stale]);

  // The alarm table of the alerts page, as Ignition's: one row per alarm with its active
  // and clear times, how long it lasted (or has lasted), its value and peak, and a box to
  // select it for acknowledging several at once.
  function alarmRow(a, refresh, selected) {
    const end = a.cleared_at ? new Date(a.cleared_at) : new Date();
    const lasted = (end - new Date(a.opened_at)) / 1000;
    const tr = el("tr", { class: `sev-${a.severity} ${a.state}${a.acknowledged ? "" : " unack"}`,
      "data-alert": a.id });
    if (canAck) {
      const box = el("input", { type: "checkbox", "data-select": a.id, "aria-label": `select alarm ${a.id}`,
        disabled: a.acknowledged });
      box.checked = selected.has(a.id);
      box.addEventListener("change", () => {
        if (box.checked) selected.add(a.id); else selected.delete(a.id);
        showSelected(selected);
      });
      tr.append(el("td", {}, box));
    }
    tr.append(
      el("td", {}, String(a.id)),
      el("td", {}, el("span", { class: "badge sev-" + a.severity, text: a.severity })),
      el("td", {}, a.kind.replace(/_/g, " ")),
      el("td", {}, alertSource(a)),
      el("td", { class: "time opened", title: a.opened_at }, fmtTime(a.opened_at)),
      el("td", { class: "time cleared", title: a.cleared_at || "" }, a.cleared_at ? fmtTime(a.cleared_at) : "–"),
      el("td", { class: "num duration" }, fmtDuration(lasted)),
      el("td", { class: "num" }, fmtNum(a.value)),
      el("td", { class: "num peak" }, fmtNum(a.peak_value)),
      el("td", { class: "state" }, alertState(a), " ", journal(a)));
    if (canAck) tr.append(a.state === "active" || !a.acknowledged ? alertActions(a, refresh) : el("td"));
    return tr;
  }

  const alarmRowSig = (a) => JSON.stringify([a.state, a.acknowledged, a.shelved, a.shelved_until,
    a.severity, a.value, a.peak_value, a.cleared_at,
    a.out_of_service, a.out_of_service_comment, a.out_of_service_machine_status,
    a.chattering, a.stale,
    // An active alarm's duration grows: redrawn each minute at most.
    a.state === "active" ? Math.floor(Date.now() / 60000) : 0]);

  function showSelected(selected) {
    const n = document.getElementById("selected-count");
    if (n) n.textContent = String(selected.size);
    const button = document.getElementById("bulk-ack");
    if (button) button.disabled = selected.size === 0;
  }

  // Filters live in the page's URL query (?factory_id=&machine_id=&severity=&state=&kind=):
  // a reload, a bookmark or a link shows the same alarms.
  const FILTERS = ["factory_id", "machine_id", "severity", "state", "kind"];

  function alerts() {
    const active = document.querySelector("#alerts-active tbody");
    const shelved = document.querySelector("#alerts-shelved tbody");
    const cleared = document.querySelector("#alerts-cleared tbody");
    const form = document.getElementById("alarm-filters");
    const selected = new Set();
    const keys = new Map(); // sensor id -> key, to name an alert's source
    const wanted = new URLSearchParams(window.location.search);
    for (const name of FILTERS) {
      const field = form.elements[name];
      const value = wanted.get(name) || "";
      // A factory or machine not listed yet keeps its place until the lists arrive.
      if (value && !Array.from(field.options).some((o) => o.value === value)) {
        field.append(el("option", { value }, `#${value}`));
      }
      field.value = value;
    }
    function filters() {
      const q = new URLSearchParams();
      for (const name of FILTERS) if (form.elements[name].value) q.set(name, form.elements[name].value);
      return q;
    }
    async function fillChoices() {
      const f = await api("GET", "/factories?per_page=1000");
      const m = await api("GET", "/machines?per_page=1000" +
        (form.elements.factory_id.value ? `&factory_id=${form.elements.factory_id.value}` : ""));
      for (const [field, rows, label] of [
        [form.elements.factory_id, f.data, (x) => x.name],
        [form.elements.machine_id, m.data, (x) => `${x.name} (${x.factory})`]]) {
        const keep = field.value;
        field.replaceChildren(el("option", { value: "" }, "all"),
          ...rows.map((x) => el("option", { value: String(x.id) }, label(x))));
        if (keep && !rows.some((x) => String(x.id) === keep)) field.append(el("option", { value: keep }, `#${keep}`));
        field.value = keep;
      }
    }
    async function name(list) {
      if (list.some((x) => x.sensor_id !== null && !keys.has(x.sensor_id))) {
        const doc = await api("GET", "/sensors?per_page=1000");
        for (const s of doc.data) keys.set(s.id, s.key);
      }
      for (const x of list) if (keys.has(x.sensor_id)) x.sensor_key = keys.get(x.sensor_id);
    }
    const none = Promise.resolve({ data: [] });
    async function refresh() {
      const q = filters();
      const state = q.get("state");
      q.delete("state");
      const base = "/alerts?" + (q.toString() ? q.toString() + "&" : "");
      const [a, u, sh, c] = await Promise.all([
        state === "cleared" ? none : api("GET", base + "state=active&shelved=false&per_page=500"),
        // Cleared but not acknowledged: stays in view until someone acknowledges it.
        state === "active" ? none : api("GET", base + "state=cleared&acknowledged=false&shelved=false&per_page=500"),
        api("GET", base + (state ? `state=${state}&` : "") + "shelved=true&per_page=500"),
        state === "active" ? none : api("GET", base + "state=cleared&acknowledged=true&per_page=50"),
      ]);
      const all = a.data.concat(u.data, sh.data, c.data);
      await name(all);
      // Unacknowledged first, then active before cleared, then by severity, newest first.
      const rank = { critical: 0, high: 1, warning: 2, medium: 3, info: 4 };
      const order = a.data.concat(u.data).sort((x, y) =>
        Number(x.acknowledged) - Number(y.acknowledged) ||
        Number(x.state !== "active") - Number(y.state !== "active") ||
        (rank[x.severity] ?? 9) - (rank[y.severity] ?? 9) || y.id - x.id);
      const visible = new Set(all.filter((x) => !x.acknowledged).map((x) => x.id));
      for (const id of Array.from(selected)) if (!visible.has(id)) selected.delete(id);
      showSelected(selected);
      const row = (x) => alarmRow(x, refresh, selected);
      syncRows(active, order, (x) => x.id, alarmRowSig, row);
      syncRows(shelved, sh.data, (x) => x.id, alarmRowSig, row);
      syncRows(cleared, c.data, (x) => x.id, alarmRowSig, row);
      // An empty list says so instead of showing bare column headings.
      document.getElementById("no-active").hidden = order.length > 0;
      document.getElementById("no-shelved").hidden = sh.data.length > 0;
      document.getElementById("alerts-active").hidden = order.length === 0;
      document.getElementById("alerts-shelved").hidden = sh.data.length === 0;
      document.getElementById("alerts-cleared").hidden = c.data.length === 0;
      await activeCount();
    }
    form.addEventListener("change", async (event) => {
      if (event.target.name === "factory_id") form.elements.machine_id.value = "";
      const q = filters().toString();
      window.history.replaceState(null, "", "/alerts" + (q ? "?" + q : ""));
      try {
        if (event.target.name === "factory_id") await fillChoices();
        await refresh();
      } catch (err) {
        setStatus(err.message, true);
      }
    });
    form.addEventListener("reset", () => window.setTimeout(() => form.dispatchEvent(new Event("change")), 0));
    const bulk = document.getElementById("bulk-ack");
    if (bulk) {
      bulk.addEventListener("click", async () => {
        const comment = document.getElementById("bulk-comment");
        const text = comment.value.trim() || null;
        const ids = Array.from(selected);
        const failed = [];
        for (const id of ids) {
          try {
            await api("POST", `/alerts/${id}/ack`, { comment: text });
          } catch (err) {
            // 409: someone acknowledged it meanwhile, which is what was asked.
            if (err.status !== 409) failed.push(`${id}: ${err.message}`);
          }
        }
        selected.clear();
        comment.value = "";
        if (failed.length) setStatus("Not acknowledged: " + failed.join("; "), true);
        else setStatus(`Acknowledged ${ids.length} alarm${ids.length === 1 ? "" : "s"}.`);
        await refresh();
      });
    }
    const all = document.getElementById("select-all");
    if (all) {
      all.addEventListener("change", () => {
        for (const box of active.querySelectorAll("input[data-select]:not([disabled])")) {
          box.checked = all.checked;
          const id = Number(box.dataset.select);
          if (all.checked) selected.add(id); else selected.delete(id);
        }
        showSelected(selected);
      });
    }
    fillChoices().catch((err) => setStatus(err.message, true));
    every(refresh);
  }

  // The alarm report: GET /alarm-report over the chosen period and factory (kept in the URL),
  // its rate drawn with the console's own plot frame (chart.js) against the targets, the
  // figures beside theirs, and the top sources linked to their sensors.
  function alarmReport() {
    const form = document.getElementById("report-form");
    const canvas = document.getElementById("rate-chart");
    const wanted = new URLSearchParams(window.location.search);
    if (wanted.get("period")) form.elements.period.value = wanted.get("period");
    let report = null;

    function targetLines(r) {
      // The standards give per-10-minute and per-day rates: each line scaled to the bucket.
      const t = r.targets;
      const b = r.rate.bucket_s;
      if (b >= 86400) {
        return [[t.per_day_avg.max * (b / 86400), "acceptable", "warn"],
          [t.per_day_avg_manageable.max * (b / 86400), "manageable", "alarm"]];
      }
      const lines = [[t.per_10min_avg.max * (b / 600), "acceptable", "warn"],
        [t.per_10min_avg_manageable.max * (b / 600), "manageable", "alarm"]];
      if (b === 600) lines.push([t.per_10min_peak.max, "flood", "alarm"]);
      return lines;
    }

    function drawRate() {
      if (!report || !window.edgePlot) return;
      const r = report;
      const from = Date.parse(r.from) / 1000;
      const to = Date.parse(r.to) / 1000;
      const b = r.rate.bucket_s;
      const lines = targetLines(r);
      const top = Math.max(1, ...r.rate.counts, ...lines.map((l) => l[0])) * 1.1;
      const { ctx, x, y, w, h, pad, colors } = window.edgePlot.frame(canvas, from, to, 0, top);
      ctx.save();
      ctx.beginPath();
      ctx.rect(pad.left, pad.top, w, h);
      ctx.clip();
      ctx.fillStyle = colors.line;
      r.rate.counts.forEach((n, i) => {
        if (!n) return;
        const x0 = x(from + i * b);
        const x1 = x(Math.min(to, from + (i + 1) * b));
        ctx.fillRect(x0, y(n), Math.max(1, x1 - x0 - 1), y(0) - y(n));
      });
      ctx.setLineDash([6, 4]);
      ctx.lineWidth = 1.5;
      ctx.textAlign = "left";
      ctx.textBaseline = "bottom";
      for (const [v, label, tone] of lines) {
        ctx.strokeStyle = colors[tone];
        ctx.fillStyle = colors[tone];
        ctx.beginPath();
        ctx.moveTo(pad.left, y(v));
        ctx.lineTo(pad.left + w, y(v));
        ctx.stroke();
        ctx.fillText(`${label} ${fmtNum(v)}`, pad.left + 4, y(v) - 2);
      }
      ctx.restore();
      const per = b >= 86400 ? "day" : b >= 3600 ? "hour" : "10 minutes";
      document.getElementById("rate-legend").textContent =
        `Bars: alarms per ${per}. Dashed: ${lines.map(([v, l]) => `${l} (${fmtNum(v)} per ${per})`).join(", ")}` +
        " — ISA-18.2 / EEMUA 191.";
      Object.assign(canvas.dataset, {
        drawn: String(Number(canvas.dataset.drawn || 0) + 1),
        bucket: String(b),
        bars: String(r.rate.counts.length),
        total: String(r.rate.counts.reduce((a, n) => a + n, 0)),
        targets: JSON.stringify(lines.map((l) => l[0])),
      });
    }

    function figure(name, value, target, over) {
      return el("tr", { "data-figure": name },
        el("td", {}, name),
        el("td", { class: over ? "num over" : "num" }, value),
        el("td", { class: "muted" }, target));
    }

    function show(r) {
      const t = r.targets;
      const pct = (v) => (v === null || v === undefined ? "–" : `${fmtNum(v * 100)} %`);
      const secs = (v) => (v === null || v === undefined ? "–" : fmtDuration(v));
      document.getElementById("report-range").textContent =
        `${fmtTime(r.from)} – ${fmtTime(r.to)}`;
      document.querySelector("#report-figures tbody").replaceChildren(
        figure("Alarms", fmtNum(r.alarms), ""),
        figure("Per day (average)", fmtNum(r.per_day_avg),
          `≤ ${t.per_day_avg.max} acceptable, ≤ ${t.per_day_avg_manageable.max} manageable`,
          r.per_day_avg > t.per_day_avg.max),
        figure("Per 10 minutes (average)", fmtNum(r.per_10min_avg),
          `≤ ${t.per_10min_avg.max} acceptable, ≤ ${t.per_10min_avg_manageable.max} manageable`,
          r.per_10min_avg > t.per_10min_avg.max),
        figure("Most in 10 minutes", fmtNum(r.per_10min_peak), `≤ ${t.per_10min_peak.max}`,
          r.per_10min_peak > t.per_10min_peak.max),
        figure("Time in flood", pct(r.floods.time_share), `< ${pct(t.flood_time_share.max)}`,
          r.floods.time_share > t.flood_time_share.max),
        figure("Chattering sources", fmtNum(r.chattering.sources), `${t.chattering.max}`,
          r.chattering.sources > t.chattering.max),
        figure("Stale alarms", fmtNum(r.stale.alarms), `${t.stale.max}`, r.stale.alarms > t.stale.max),
        figure("Shelved alarms", fmtNum(r.shelved.alarms), ""),
        figure("Acknowledged in (median / p90)",
          `${secs(r.ack_time_s.median)} / ${secs(r.ack_time_s.p90)}`, ""));
      const sources = document.querySelector("#report-sources tbody");
      sources.replaceChildren(...r.top_sources.map((s, i) => el("tr", { "data-source": s.sensor_id ?? "" },
        el("td", {}, String(i + 1)),
        el("td", {}, s.sensor_id !== null
          ? el("a", { href: `/sensors/${s.sensor_id}` }, s.key || `sensor ${s.sensor_id}`)
          : `gateway ${s.gateway_id}`),
        el("td", { class: "num" }, fmtNum(s.count)),
        el("td", { class: "num over-share" }, pct(s.share)))));
      document.getElementById("no-sources").hidden = r.top_sources.length > 0;
      drawRate();
    }

    async function load() {
      const period = Number(form.elements.period.value) || 86400;
      const to = Math.floor(Date.now() / 1000);
      const q = new URLSearchParams({ from: String(to - period), to: String(to) });
      if (form.elements.factory_id.value) q.set("factory_id", form.elements.factory_id.value);
      report = (await api("GET", "/alarm-report?" + q.toString())).data;
      show(report);
    }

    async function factories() {
      const keep = wanted.get("factory_id") || "";
      const doc = await api("GET", "/factories?per_page=1000");
      form.elements.factory_id.replaceChildren(el("option", { value: "" }, "all (the fleet)"),
        ...doc.data.map((f) => el("option", { value: String(f.id) }, f.name)));
      form.elements.factory_id.value = keep;
    }

    form.addEventListener("change", async () => {
      const q = new URLSearchParams();
      if (form.elements.factory_id.value) q.set("factory_id", form.elements.factory_id.value);
      q.set("period", form.elements.period.value);
      window.history.replaceState(null, "", "/alarm-report?" + q.toString());
      try {
        await load();
      } catch (err) {
        setStatus(err.message, true);
      }
    });
    window.addEventListener("resize", drawRate);
    // The report is read once per change of period or factory, not polled: it reads every
    // alarm of the period. The header's count keeps fresh.
    let first = true;
    every(async () => {
      if (first) {
        first = false;
        await factories();
        await load();
      }
      await activeCount();
    });
  }

  function sensor() {
    const id = itemId;
    let current = null;
    const rulesBody = document.querySelector("#rules tbody");
    const alertsBody = document.querySelector("#sensor-alerts tbody");

    async function header() {
      const s = (await api("GET", `/sensors/${id}`)).data;
      current = s;
      document.getElementById("title").textContent = `${s.name} (${s.key})`;
      const m = (await api("GET", `/machines/${s.machine_id}`)).data;
      const f = (await api("GET", `/factories/${m.factory_id}`)).data;
      crumbs([[`/factories/${f.id}`, f.name], [`/machines/${m.id}`, m.name], [`/sensors/${s.id}`, s.name]]);
      const t = s.thresholds;
      document.getElementById("thresholds-view").textContent =
        `min ${fmtNum(t.min)} · max ${fmtNum(t.max)}` + (s.unit ? ` ${s.unit}` : "");
      if (window.edgeChart) window.edgeChart.setThresholds(t.min, t.max);
      const form = document.getElementById("thresholds-form");
      if (form && !form.contains(document.activeElement)) {
        form.elements.min.value = t.min ?? "";
        form.elements.max.value = t.max ?? "";
      }
    }

    async function latest() {
      try {
        const r = (await api("GET", `/sensors/${id}/latest`)).data;
        document.getElementById("latest-value").textContent = fmtNum(r.value);
        document.getElementById("latest-unit").textContent = r.unit || "";
        document.getElementById("latest-time").textContent = fmtTime(r.time);
      } catch (err) {
        if (err.status !== 404) throw err; // 404: no reading yet
      }
    }

    async function rules() {
      const doc = await api("GET", `/sensors/${id}/rules`);
      syncRows(rulesBody, doc.data, (r) => r.id, (r) => JSON.stringify(r), (r) => {
        const tr = el("tr", { "data-rule": r.id },
          el("td", {}, String(r.id)),
          el("td", {}, r.condition),
          el("td", { class: "num" },
            r.condition === "OUT_OF_RANGE" ? `${fmtNum(r.threshold)} – ${fmtNum(r.threshold_high)}` : fmtNum(r.threshold)),
          el("td", {}, r.severity),
          el("td", {}, r.enabled ? "yes" : "no"));
        if (isAdmin) {
          const toggle = el("button", { type: "button" }, r.enabled ? "Disable" : "Enable");
          toggle.addEventListener("click", () => write("PATCH", `/rules/${r.id}`, { enabled: !r.enabled }, rules));
          const del = el("button", { type: "button", class: "danger" }, "Delete");
          del.addEventListener("click", () => write("DELETE", `/rules/${r.id}`, undefined, rules));
          tr.append(el("td", {}, toggle, " ", del));
        }
        return tr;
      });
    }

    async function sensorAlerts() {
      const doc = await api("GET", `/alerts?sensor_id=${id}&per_page=50`);
      syncRows(alertsBody, doc.data, (a) => a.id, alertSig, (a) => alertRow(a, false, null, false));
      if (window.edgeChart) window.edgeChart.setAlarms(doc.data);
    }

    async function write(method, path, payload, then) {
      try {
        await api(method, path, payload);
        setStatus("Saved.");
        await then();
      } catch (err) {
        setStatus(err.message, true);
      }
    }

    const numberOrNull = (v) => (v === "" ? null : Number(v));
    const tform = document.getElementById("thresholds-form");
    if (tform) {
      tform.addEventListener("submit", (event) => {
        event.preventDefault();
        const min = numberOrNull(tform.elements.min.value);
        const max = numberOrNull(tform.elements.max.value);
        write("PUT", `/sensors/${id}/thresholds`, { min, max }, header);
      });
    }
    const rform = document.getElementById("rule-form");
    if (rform) {
      rform.addEventListener("submit", (event) => {
        event.preventDefault();
        const e = rform.elements;
        const rule = {
          condition: e.condition.value,
          threshold: Number(e.threshold.value),
          severity: e.severity.value,
          enabled: true,
        };
        if (e.threshold_high.value !== "") rule.threshold_high = Number(e.threshold_high.value);
        write("POST", `/sensors/${id}/rules`, rule, async () => {
          rform.reset();
          await rules();
        });
      });
    }

    let first = true;
    every(async () => {
      if (first) {
        first = false;
        await Promise.all([header(), rules()]);
      }
      await Promise.all([latest(), sensorAlerts(), activeCount()]);
      if (window.edgeChart) window.edgeChart.follow();
    });
  }

  window.edgeConsole = { api, el, fmtTime, fmtNum, setStatus };
  const pages = { fleet, factories, factory, machine, alerts, sensor, alarm_report: alarmReport };
  const run = pages[body.dataset.page];
  if (run) run();
})();
