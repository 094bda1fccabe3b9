// Alarms: an alert's row (its state, actions and journal), used by the alerts page and the
// sensor page, and the alerts page itself (the alarm table, its filters and bulk acknowledge).
"use strict";

(function () {
  const ui = window.edgeConsole;
  const { api, el, fmtTime, fmtNum, fmtDuration, utc, timeEl, setStatus, syncRows, every,
    activeCount, pages, canAck } = ui;

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
    // What went wrong, beside the buttons that asked (the row stays while it holds focus).
    const said = el("output", { class: "feedback", "aria-live": "polite" });
    const act = (path, payload) => async (event) => {
      event.preventDefault();
      said.textContent = "";
      said.classList.remove("error");
      try {
        await api("POST", `/alerts/${a.id}/${path}`, payload());
      } catch (err) {
        if (err.status === 401) return; // the session ended: the page signs in again
        // 409 to an acknowledgement: someone acknowledged it meanwhile, as asked.
        if (!(path === "ack" && err.status === 409)) {
          said.textContent = err.message;
          said.classList.add("error");
          return;
        }
      }
      // Done: the row is no longer being edited, so the next refresh redraws it.
      comment.value = "";
      if (td.contains(document.activeElement)) document.activeElement.blur();
      await refresh();
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
    td.append(" ", said);
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
              el("time", { title: utc(e.at) }, fmtTime(e.at)),
              ` ${e.action}`,
              byText(e.by),
              e.comment ? `: ${e.comment}` : ""))
        );
      } catch (err) {
        setStatus(`Alert ${a.id}: ${err.message}`, true);
      }
    });
    return box;
  }

  // An alarm's cells, from its id to its state, as the alarm table and a sensor's page
  // show them (the sensor's page leaves out the source: it is the sensor).
  function alarmCells(a, withSource) {
    return [
      el("td", {}, String(a.id)),
      el("td", {}, el("span", { class: "badge sev-" + a.severity, text: a.severity })),
      el("td", {}, a.kind.replace(/_/g, " ")),
      ...(withSource ? [el("td", {}, alertSource(a))] : []),
      timeEl("td", a.opened_at, { class: "time opened" }),
      timeEl("td", a.cleared_at, { class: "time cleared" }, "\u2013"),
      el("td", { class: "num duration" }, fmtDuration(lasted(a))),
      el("td", { class: "num" }, fmtNum(a.value)),
      el("td", { class: "num peak" }, fmtNum(a.peak_value)),
      el("td", { class: "state" }, alertState(a), " ", journal(a)),
    ];
  }

  function alertRow(a, withActions, refresh, withSource) {
    const tr = el("tr", { class: `sev-${a.severity} ${a.state}`, "data-alert": a.id },
      ...alarmCells(a, withSource));
    if (withActions) tr.append(a.state === "active" || !a.acknowledged ? alertActions(a, refresh) : el("td"));
    return tr;
  }

  const alertSig = (a) =>
    JSON.stringify([a.state, a.acknowledged, a.shelved, a.shelved_until, a.severity, a.value,
      a.peak_value, a.cleared_at,
      a.out_of_service, a.out_of_service_comment, a.out_of_service_machine_status,
      a.chattering, a.stale,
      // An active alarm's duration grows: redrawn each minute at most.
      a.state === "active" ? Math.floor(Date.now() / 60000) : 0]);

  // Seconds from opening to clearing, or to now while active.
  const lasted = (a) =>
    ((a.cleared_at ? new Date(a.cleared_at) : new Date()) - new Date(a.opened_at)) / 1000;

  // The alarm table of the alerts page, as Ignition's: one row per alarm with its active
  // and clear times, how long it lasted (or has lasted), its value and peak, and a box to
  // select it for acknowledging several at once.
  function alarmRow(a, refresh, selected) {
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
    tr.append(...alarmCells(a, true));
    if (canAck) tr.append(a.state === "active" || !a.acknowledged ? alertActions(a, refresh) : el("td"));
    return tr;
  }

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
      const rank = { critical: 0, warning: 1, info: 2 };
      const order = a.data.concat(u.data).sort((x, y) =>
        Number(x.acknowledged) - Number(y.acknowledged) ||
        Number(x.state !== "active") - Number(y.state !== "active") ||
        (rank[x.severity] ?? 9) - (rank[y.severity] ?? 9) || y.id - x.id);
      const visible = new Set(all.filter((x) => !x.acknowledged).map((x) => x.id));
      for (const id of Array.from(selected)) if (!visible.has(id)) selected.delete(id);
      showSelected(selected);
      const row = (x) => alarmRow(x, refresh, selected);
      syncRows(active, order, (x) => x.id, alertSig, row);
      syncRows(shelved, sh.data, (x) => x.id, alertSig, row);
      syncRows(cleared, c.data, (x) => x.id, alertSig, row);
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

  ui.alertRow = alertRow;
  ui.alertSig = alertSig;
  pages.alerts = alerts;
})();
