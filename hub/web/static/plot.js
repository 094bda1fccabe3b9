// The console's plots on a canvas (the sensor chart and the alarm report's rate chart):
// a frame sized to the element for the screen's pixel ratio, with a value grid whose ticks
// cover the data in nice steps and a time grid labelled in the console's date format.
"use strict";

(function () {
  const DAY = 86400;
  const PAD = { left: 64, right: 12, top: 12, bottom: 28 };

  function niceStep(span, count) {
    const raw = span / count;
    const mag = Math.pow(10, Math.floor(Math.log10(raw)));
    for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
    return 10 * mag;
  }

  // A value axis that covers [lo, hi]: both ends moved out to whole multiples of a nice step
  // (1, 2 or 5 x 10^n), so the lowest and highest ticks sit at or beyond the data.
  function niceRange(lo, hi, count) {
    const step = niceStep(hi - lo, count);
    return [Math.floor(lo / step + 1e-9) * step, Math.ceil(hi / step - 1e-9) * step, step];
  }

  // The ticks of [y0, y1] at step, counted by index (adding step up loses the last tick to
  // float error), each rounded to the step's decimals: 0.1 + 0.2 is labelled 0.3.
  function ticks(y0, y1, step) {
    const decimals = Math.max(0, -Math.floor(Math.log10(step) + 1e-9));
    const out = [];
    for (let n = Math.ceil(y0 / step - 1e-9); n <= Math.floor(y1 / step + 1e-9); n++) {
      out.push(Number((n * step).toFixed(decimals)));
    }
    return { values: out, decimals };
  }

  const TIME_STEPS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 2 * DAY, 7 * DAY,
    14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY];

  // Axis labels in the console's one date format (ISO 8601, 24 h, the plant's time zone:
  // console.js), as short as the step allows: 14:05, 2026-12-07, 2026-12.
  function timeLabel(ts, step) {
    const d = window.edgeConsole.parts(new Date(ts * 1000));
    const two = (n) => String(n).padStart(2, "0");
    if (step < DAY && (d.hour || d.minute)) return `${two(d.hour)}:${two(d.minute)}`;
    if (step < 30 * DAY) return `${d.year}-${two(d.month)}-${two(d.day)}`;
    return `${d.year}-${two(d.month)}`;
  }

  // A plot's frame on a canvas, shared by every chart of the console: sized to the element
  // for the screen's pixel ratio, cleared, with a value grid over [y0, y1] and a time grid
  // over [from, to] (epoch seconds), labelled. Returns the 2D context, the scales and the
  // stylesheet's chart colours for the caller to draw its data.
  function frame(canvas, from, to, y0, y1, ystep) {
    const dpr = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth;
    const cssH = canvas.clientHeight;
    if (canvas.width !== Math.round(cssW * dpr) || canvas.height !== Math.round(cssH * dpr)) {
      canvas.width = Math.round(cssW * dpr);
      canvas.height = Math.round(cssH * dpr);
    }
    const ctx = canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const w = cssW - PAD.left - PAD.right;
    const h = cssH - PAD.top - PAD.bottom;
    const x = (ts) => PAD.left + ((ts - from) / (to - from)) * w;
    const y = (v) => PAD.top + (1 - (v - y0) / (y1 - y0)) * h;
    const style = getComputedStyle(canvas);
    const color = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
    const colors = {
      ink: color("--chart-ink", "#333"),
      grid: color("--chart-grid", "#ddd"),
      line: color("--chart-line", "#1f6feb"),
      band: color("--chart-band", "rgba(31,111,235,0.25)"),
      alarm: color("--chart-alarm", "#d1242f"),
      warn: color("--chart-warn", "#9a6700"),
    };
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = colors.ink;
    ctx.strokeStyle = colors.grid;
    ctx.lineWidth = 1;
    // value grid
    const vticks = ticks(y0, y1, ystep || niceStep(y1 - y0, 5));
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const v of vticks.values) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, yy);
      ctx.lineTo(PAD.left + w, yy);
      ctx.stroke();
      ctx.fillText(v.toFixed(vticks.decimals), PAD.left - 6, yy);
    }
    // time grid
    const span = to - from;
    const tstep = TIME_STEPS.find((s) => span / s <= 8) || 365 * DAY;
    // Ticks on whole steps of the plant's clock (midnight there, not in UTC).
    const offset = -window.edgeConsole.zoneOffset(from);
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    for (let t = Math.ceil((from - offset) / tstep) * tstep + offset; t <= to; t += tstep) {
      const xx = Math.round(x(t)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(xx, PAD.top);
      ctx.lineTo(xx, PAD.top + h);
      ctx.stroke();
      ctx.fillText(timeLabel(t, tstep), xx, PAD.top + h + 6);
    }
    return { ctx, x, y, w, h, pad: PAD, colors, yticks: vticks.values };
  }

  window.edgePlot = { frame, niceStep, niceRange, timeLabel };
})();
