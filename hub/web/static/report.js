// The alarm report: GET /alarm-report over the chosen period and factory (kept in the URL),
// its rate drawn with the console's own plot frame (plot.js) against the targets, the
// figures beside theirs, and the top sources linked to their sensors.
"use strict";

(function () {
  const { api, el, fmtTime, fmtNum, fmtDuration, utc, setStatus, every, activeCount, pages } =
    window.edgeConsole;

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
      const range = document.getElementById("report-range");
      range.textContent = `${fmtTime(r.from)} – ${fmtTime(r.to)}`;
      range.title = `${utc(r.from)} – ${utc(r.to)}`;
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

  pages.alarm_report = alarmReport;
})();
