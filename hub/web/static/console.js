// The operator console's common part, loaded by every page before its own script: the JSON
// API (/api/v1) with the session cookie, building DOM, the console's formats (times in the
// plant's time zone), table rows kept in place across polls, and the polling itself. Each
// page's script (plant.js, alarms.js, report.js, sensor.js; admin.js for admins) registers
// itself in edgeConsole.pages; the page named by body[data-page] runs once all are loaded.
// Writes send the page's CSRF token in X-CSRF-Token. Nothing here keeps a token: the
// session cookie is HttpOnly, and nothing is written to localStorage or sessionStorage.
// DOM built with textContent only: names come from the field.
"use strict";

(function () {
  const body = document.body;
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const role = body.dataset.role || "";
  const pollMs = Number(body.dataset.pollMs) || 5000;

  class ApiError extends Error {
    constructor(status, message, details) {
      super(message);
      this.status = status;
      this.details = details || [];
    }
  }

  let leaving = false;
  // Signing out ends the session before the server's redirect arrives: a poll answered 401
  // meanwhile must not send the page to "session ended" instead.
  const signout = document.querySelector("form.signout");
  if (signout) signout.addEventListener("submit", () => { leaving = true; });

  // The page is going away (signed out, its item deleted): asks nothing more.
  function leave() {
    leaving = true;
  }

  // Before a delete: pause() waits for every request under way and holds back the reads
  // asked meanwhile (polls, the chart) until resume(), so none asks for the item while it
  // goes (a 404). After a delete the page leaves and they are never sent.
  const underWay = new Set();
  let held = null;
  async function pause() {
    let release;
    held = { until: new Promise((resolve) => { release = resolve; }), release };
    await Promise.allSettled(Array.from(underWay));
  }
  function resume() {
    if (held) held.release();
    held = null;
  }

  async function api(method, path, payload) {
    if (leaving) throw new ApiError(0, "leaving the page");
    if (held && method === "GET") {
      await held.until;
      if (leaving) throw new ApiError(0, "leaving the page");
    }
    const headers = { Accept: "application/json" };
    const init = { method, credentials: "same-origin", headers, cache: "no-store" };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = csrf;
      if (payload !== undefined) {
        headers["Content-Type"] = "application/json";
        init.body = JSON.stringify(payload);
      }
    }
    const asked = fetch("/api/v1" + path, init);
    underWay.add(asked);
    let res;
    try {
      res = await asked;
    } finally {
      underWay.delete(asked);
    }
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
      const e = doc.error || {};
      throw new ApiError(res.status, e.message || res.statusText, e.details);
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

  // One date format on every page: ISO 8601, 24 h, to the second, in the plant's time zone
  // ([console] time_zone, on the body as data-time-zone), whatever the browser's own zone:
  // 2026-12-07 14:05:09. The UTC instant goes in the title (utc()).
  const zone = body.dataset.timeZone || "UTC";
  const wall = new Intl.DateTimeFormat("en-CA", {
    timeZone: zone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
    hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
  // A moment's wall-clock fields in the plant's zone, as numbers: { year, month (1-12), day,
  // hour, minute, second }.
  function parts(date) {
    const p = {};
    for (const { type, value } of wall.formatToParts(date)) {
      if (type !== "literal") p[type] = Number(value);
    }
    return p;
  }
  const pad = (n) => String(n).padStart(2, "0");
  function fmtDate(date) {
    const p = parts(date);
    return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}:${pad(p.second)}`;
  }
  function fmtTime(iso) {
    return iso ? fmtDate(new Date(iso)) : "never";
  }
  // The exact instant in UTC, for titles: 2026-12-07 13:05:09 UTC.
  function utc(iso) {
    if (!iso) return "";
    return new Date(iso).toISOString().replace("T", " ").replace(/(\.\d+)?Z$/, " UTC");
  }
  // Seconds the plant's clock is ahead of UTC at epoch second ts (3600 in Berlin's winter).
  function zoneOffset(ts) {
    const p = parts(new Date(Math.floor(ts) * 1000));
    return Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second) / 1000 - Math.floor(ts);
  }
  // A wall-clock time typed in the console's format in the plant's zone ("2026-12-07 14:05",
  // seconds optional, a T for the space allowed) as epoch seconds; null when not a time.
  function fromWall(text) {
    const m = /^\s*(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2}))?\s*$/.exec(text || "");
    if (!m) return null;
    const naive = Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0)) / 1000;
    // The offset at the guess, then again at the corrected instant (a change of summer time
    // between the two).
    const first = naive - zoneOffset(naive);
    return naive - zoneOffset(first);
  }
  // Epoch seconds as a field's value in the console's format, to the minute, plant's zone.
  function toWall(ts) {
    const p = parts(new Date(Math.floor(ts) * 1000));
    return `${p.year}-${pad(p.month)}-${pad(p.day)} ${pad(p.hour)}:${pad(p.minute)}`;
  }

  // A table cell (or other element) showing a time, the UTC instant on hover.
  function timeEl(tag, iso, attrs, empty) {
    return el(tag, { ...(attrs || {}), title: iso ? utc(iso) : null }, iso ? fmtTime(iso) : (empty ?? "never"));
  }

  // A duration as h:mm:ss (d added past a day): an alarm's time active.
  function fmtDuration(seconds) {
    if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "–";
    const s = Math.max(0, Math.round(seconds));
    const days = Math.floor(s / 86400);
    const hms = `${Math.floor((s % 86400) / 3600)}:${pad(Math.floor((s % 3600) / 60))}:${pad(s % 60)}`;
    return days ? `${days} d ${hms}` : hms;
  }

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
  // typing in it (a comment half written, a rule's edited deadband must survive the next
  // poll): focus in it, an open box, a field changed from what the row was drawn with.
  function syncRows(tbody, items, keyOf, sigOf, build) {
    const existing = new Map();
    for (const tr of Array.from(tbody.rows)) existing.set(tr.dataset.key, tr);
    const busy = (tr) =>
      tr.contains(document.activeElement) ||
      tr.querySelector("details[open]") !== null ||
      Array.from(tr.querySelectorAll("input")).some((i) => i.type !== "checkbox" && i.value !== i.defaultValue);
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
  // edgeConsole.refresh() runs it once more at once (after a write, to show its effect).
  let current = null;
  function every(fn) {
    current = fn;
    async function tick() {
      try {
        await fn();
        setStatus("");
      } catch (err) {
        if (err.status !== 401 && !leaving) setStatus("Could not refresh: " + err.message, true);
      } finally {
        body.dataset.refreshes = String(Number(body.dataset.refreshes || 0) + 1);
        window.setTimeout(tick, pollMs);
      }
    }
    tick();
  }
  async function refresh() {
    if (current) await current();
  }

  async function activeCount() {
    // Shelved alarms are suppressed: they are not counted here.
    const doc = await api("GET", "/alerts?state=active&acknowledged=false&shelved=false&per_page=1");
    const node = document.getElementById("active-count");
    if (node) node.textContent = doc.meta.total ? String(doc.meta.total) : "";
  }

  function crumbs(parts) {
    const nav = document.getElementById("crumbs");
    nav.replaceChildren(el("a", { href: "/factories" }, "Factories"));
    for (const [href, text] of parts) nav.append(" › ", el("a", { href }, text));
  }

  // A form choosing a range in the plant's time zone (its from and to fields, the last 24 h
  // at first) whose submit downloads hrefOf(from, to) (epoch seconds): a plain link to the
  // API, so the browser sends the session cookie with it (no token in the URL), and the hub
  // names the file.
  function exportForm(form, hrefOf) {
    const feedback = form.querySelector(".feedback");
    const now = Date.now() / 1000;
    form.elements.from.value = toWall(now - 86400);
    form.elements.to.value = toWall(now);
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const from = fromWall(form.elements.from.value);
      const to = fromWall(form.elements.to.value);
      const wrong = from === null || to === null || to <= from;
      feedback.textContent = wrong ? "Give a start and a later end as 2026-12-07 14:05." : "";
      feedback.classList.toggle("error", wrong);
      if (wrong) return;
      const link = el("a", { href: hrefOf(from, to), download: "" });
      document.body.append(link);
      link.click();
      link.remove();
    });
  }
  const range = (from, to) =>
    new URLSearchParams({ format: "csv", from: String(Math.floor(from)), to: String(Math.ceil(to)) }).toString();

  const pages = {};
  window.edgeConsole = {
    api, leave, pause, resume, el, fmtTime, fmtDate, fmtNum, fmtAge, fmtDuration, utc, timeEl,
    parts, zoneOffset, fromWall, toWall, setStatus, syncRows, every, refresh, activeCount,
    crumbs, exportForm, range, pages,
    itemId: body.dataset.id,
    pollMs,
    canAck: role === "operator" || role === "admin",
    isAdmin: role === "admin",
  };
  // Deferred scripts run in order before DOMContentLoaded: by then every page's script has
  // registered itself.
  document.addEventListener("DOMContentLoaded", () => {
    const run = pages[body.dataset.page];
    if (run) run();
  });
})();
