// The sensor page: its name and place, the latest value, thresholds, rules and alerts, with
// the chart (chart.js) and the CSV export of the readings in view or of a chosen range.
// Admins' controls (thresholds, rules, the sensor itself) are admin.js's.
"use strict";

(function () {
  const ui = window.edgeConsole;
  const { api, el, fmtTime, fmtNum, utc, syncRows, every, activeCount, crumbs, pages, itemId } = ui;

  function sensor() {
    const id = itemId;
    const rulesBody = document.querySelector("#rules tbody");
    const alertsBody = document.querySelector("#sensor-alerts tbody");

    async function header() {
      const s = (await api("GET", `/sensors/${id}`)).data;
      document.getElementById("title").textContent = `${s.name} (${s.key})`;
      document.dispatchEvent(new CustomEvent("edge:item", { detail: s }));
      const m = (await api("GET", `/machines/${s.machine_id}`)).data;
      const f = (await api("GET", `/factories/${m.factory_id}`)).data;
      crumbs([[`/factories/${f.id}`, f.name], [`/machines/${m.id}`, m.name], [`/sensors/${s.id}`, s.name]]);
      const t = s.thresholds;
      document.getElementById("thresholds-view").textContent =
        `min ${fmtNum(t.min)} · max ${fmtNum(t.max)}` + (s.unit ? ` ${s.unit}` : "");
      if (window.edgeChart) window.edgeChart.setThresholds(t.min, t.max);
    }

    async function latest() {
      try {
        const r = (await api("GET", `/sensors/${id}/latest`)).data;
        document.getElementById("latest-value").textContent = fmtNum(r.value);
        document.getElementById("latest-unit").textContent = r.unit || "";
        const time = document.getElementById("latest-time");
        time.textContent = fmtTime(r.time);
        time.title = utc(r.time);
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
          el("td", { class: "num deadband" }, fmtNum(r.deadband)),
          el("td", { class: "num delay" }, `${fmtNum(r.delay_s)} s`),
          el("td", {}, r.severity),
          el("td", {}, r.enabled ? "yes" : "no"));
        // Admins get the rule's controls (admin.js, loaded for them alone).
        if (ui.ruleControls) tr.append(ui.ruleControls(r, rules));
        return tr;
      });
    }

    async function sensorAlerts() {
      const doc = await api("GET", `/alerts?sensor_id=${id}&per_page=50`);
      syncRows(alertsBody, doc.data, (a) => a.id, ui.alertSig, (a) => ui.alertRow(a, false, null, false));
      if (window.edgeChart) window.edgeChart.setAlarms(doc.data);
    }

    // The CSV export of the readings: the chart's view when it is clicked, or the range
    // chosen in the plant's time zone.
    const csvHref = (from, to) => `/api/v1/sensors/${id}/readings?${ui.range(from, to)}`;
    const exportView = document.getElementById("export-view");
    exportView.addEventListener("click", () => {
      const view = window.edgeChart ? window.edgeChart.state : null;
      const to = view && view.to ? view.to : Date.now() / 1000;
      exportView.href = csvHref(view && view.from ? view.from : to - 86400, to);
    });
    ui.exportForm(document.getElementById("export-form"), csvHref);

    // An admin's write re-reads the sensor and its rules at once.
    ui.reload = () => Promise.all([header(), rules()]);

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

  pages.sensor = sensor;
})();
