// The plant's pages: the fleet (alarm roll-up and gateways), the factories, a factory's
// machines and a machine's sensors, each with its alarm state from GET /alarm-summary.
"use strict";

(function () {
  const { api, el, fmtNum, fmtAge, utc, syncRows, every, activeCount, crumbs, exportForm, range,
    pages, itemId } = window.edgeConsole;

  // The roll-up's alarm state of a sensor, machine or factory (GET /alarm-summary): the
  // worst active severity and the counts, with data- attributes a test can read. Alarms of
  // a sensor out of service are counted apart: they are in none of the other counts.
  function alarmCell(al) {
    const td = el("td", {
      class: "alarm", "data-worst": al.worst_severity || "none", "data-active": al.active,
      "data-unack": al.unacknowledged, "data-shelved": al.shelved,
      "data-out-of-service": al.out_of_service || 0,
    });
    if (al.active) {
      td.append(el("span", { class: "badge sev-" + al.worst_severity, text: al.worst_severity }),
        ` ${al.active} active`);
    } else {
      td.append(el("span", { class: "badge ok", text: "normal" }));
    }
    if (al.unacknowledged) td.append(`, ${al.unacknowledged} unacknowledged`);
    if (al.shelved) td.append(`, ${al.shelved} shelved`);
    if (al.out_of_service) td.append(`, ${al.out_of_service} out of service`);
    return td;
  }
  const alarmSig = (al) => [al.worst_severity, al.active, al.unacknowledged, al.shelved, al.out_of_service];

  pages.fleet = function fleet() {
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
      const oos = s.alarms.out_of_service ? `, ${s.alarms.out_of_service} out of service` : "";
      document.getElementById("alarm-summary").textContent = s.alarms.in_alarm
        ? `${inAlarm} of ${s.factories.length} factories in alarm: ${s.alarms.active} active ` +
          `(worst ${s.alarms.worst_severity}), ${s.alarms.unacknowledged} unacknowledged${oos}`
        : `No active alarms (${s.alarms.unacknowledged} unacknowledged, ${s.alarms.shelved} shelved${oos})`;
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
            el("td", { title: utc(g.last_seen) }, g.last_seen ? fmtAge(g.last_seen_age_s) : "never"),
            el("td", { class: "num" }, fmtNum(g.backlog)),
            el("td", { class: "num" }, fmtNum(g.dropped)),
            el("td", { class: "num" }, fmtNum(g.dead_letters)),
            el("td", {}, g.agent_version || "–"))
      );
      await activeCount();
    });
  };

  pages.factories = function factories() {
    const tbody = document.querySelector("#factories tbody");
    every(async () => {
      const doc = await api("GET", "/factories?per_page=1000");
      syncRows(tbody, doc.data, (f) => f.id, (f) => JSON.stringify([f.name, f.location]),
        (f) => el("tr", { "data-factory": f.id },
          el("td", {}, el("a", { href: `/factories/${f.id}` }, f.name)),
          el("td", {}, f.location || "")));
      await activeCount();
    });
  };

  pages.factory = function factory() {
    const tbody = document.querySelector("#machines tbody");
    // The report of the chosen period as a file named for the factory and the period.
    exportForm(document.getElementById("report-export"),
      (from, to) => `/api/v1/factories/${itemId}/report?${range(from, to)}`);
    every(async () => {
      const [f, doc] = await Promise.all([
        api("GET", `/factories/${itemId}`),
        api("GET", `/alarm-summary?factory_id=${itemId}`),
      ]);
      document.getElementById("title").textContent = f.data.name;
      crumbs([[`/factories/${f.data.id}`, f.data.name]]);
      document.dispatchEvent(new CustomEvent("edge:item", { detail: f.data }));
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
  };

  pages.machine = function machine() {
    const tbody = document.querySelector("#sensors tbody");
    every(async () => {
      // The machine itself each round too: an admin's rename shows at once.
      const [m, doc] = await Promise.all([
        api("GET", `/machines/${itemId}`),
        api("GET", `/alarm-summary?machine_id=${itemId}`),
      ]);
      document.getElementById("title").textContent = m.data.name;
      crumbs([[`/factories/${m.data.factory_id}`, m.data.factory], [`/machines/${m.data.id}`, m.data.name]]);
      document.dispatchEvent(new CustomEvent("edge:item", { detail: m.data }));
      syncRows(tbody, doc.data.sensors, (s) => s.id,
        (s) => JSON.stringify([s.name, s.unit, s.value, s.time, s.thresholds, s.stale,
          alarmSig(s.alarms)]),
        (s) => el("tr", { "data-sensor": s.id, class: s.alarms.in_alarm ? "in-alarm" : null },
          el("td", {}, el("a", { href: `/sensors/${s.id}` }, s.name)),
          el("td", {}, s.key),
          el("td", { class: "num value", title: s.time ? utc(s.time) : "no reading yet" },
            fmtNum(s.value)),
          el("td", {}, s.unit || ""),
          el("td", { class: "num" }, fmtNum(s.thresholds.min)),
          el("td", { class: "num" }, fmtNum(s.thresholds.max)),
          alarmCell(s.alarms),
          el("td", {}, s.stale ? el("span", { class: "badge offline", text: "stale" }) : "")));
      await activeCount();
    });
  };
})();
