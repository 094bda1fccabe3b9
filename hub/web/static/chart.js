// The sensor page's chart: our own canvas drawing, no library. Each view (from, to) asks
// the hub for one bucket per pixel column (series?points=<canvas width>), so any range,
// an hour or years, costs the same few hundred points; the hub answers from its rollups.
// Wheel zooms around the cursor, dragging pans, double-click goes back to the last 24 h.
// The view is kept in the URL's fragment (#from=..&to=.., epoch seconds) for bookmarks.
// After each answer is drawn: performance.mark("chart-drawn"), and the canvas's data-*
// attributes say what was asked and drawn (the browser tests and the benchmark read them).
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

  const TIME_STEPS = [60, 300, 900, 3600, 3 * 3600, 6 * 3600, 12 * 3600, DAY, 2 * DAY, 7 * DAY,
    14 * DAY, 30 * DAY, 91 * DAY, 182 * DAY, 365 * DAY];

  // Axis labels in the console's one date format (ISO 8601, 24 h), as short as the step
  // allows: 14:05, 2026-12-07, 2026-12.
  function timeLabel(ts, step) {
    const d = new Date(ts * 1000);
    const two = (n) => String(n).padStart(2, "0");
    if (step < DAY && (d.getHours() || d.getMinutes())) return `${two(d.getHours())}:${two(d.getMinutes())}`;
    if (step < 30 * DAY) return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`;
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}`;
  }

  // A plot's frame on a canvas, shared by every chart of the console: sized to the element
  // for the screen's pixel ratio, cleared, with a value grid over [y0, y1] and a time grid
  // over [from, to] (epoch seconds), labelled. Returns the 2D context, the scales and the
  // stylesheet's chart colours for the caller to draw its data.
  function frame(canvas, from, to, y0, y1) {
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
    const vstep = niceStep(y1 - y0, 5);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(y0 / vstep) * vstep; v <= y1; v += vstep) {
      const yy = Math.round(y(v)) + 0.5;
      ctx.beginPath();
      ctx.moveTo(PAD.left, yy);
      ctx.lineTo(PAD.left + w, yy);
      ctx.stroke();
      ctx.fillText(Number(v.toPrecision(6)).toString(), PAD.left - 6, yy);
    }
    // time grid
    const span = to - from;
    const tstep = TIME_STEPS.find((s) => span / s <= 8) || 365 * DAY;
    const offset = new Date().getTimezoneOffset() * 60;
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
    return { ctx, x, y, w, h, pad: PAD, colors };
  }

  window.edgePlot = { frame, niceStep, timeLabel };

  const canvas = document.getElementById("chart");
  if (!canvas) return;
  const ui = window.edgeConsole;
  const sensorId = document.body.dataset.id;
  const MIN_SPAN = 60;
  const MAX_SPAN = 20 * 365 * DAY;
  const pollMs = Number(document.body.dataset.pollMs) || 5000;

  const state = {
    from: 0,
    to: 0,
    following: true, // the view ends at "now" and moves with it
    data: [],
    meta: null,
    asked: 0,
    thresholds: { min: null, max: null },
    drag: null,
    drawn: 0,
    inflight: false, // an answer is awaited: a poll does not ask again meanwhile
    askedAt: 0,
  };

  function nowS() {
    return Date.now() / 1000;
  }

  function fromHash() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const from = Number(params.get("from"));
    const to = Number(params.get("to"));
    if (params.has("from") && params.has("to") && to > from) {
      state.from = from;
      state.to = to;
      state.following = false;
      return;
    }
    const span = Number(params.get("range")) || DAY;
    state.to = nowS();
    state.from = state.to - span;
    state.following = true;
  }

  function toHash() {
    const text = state.following
      ? `range=${Math.round(state.to - state.from)}`
      : `from=${state.from.toFixed(3)}&to=${state.to.toFixed(3)}`;
    window.history.replaceState(null, "", "#" + text);
  }

  function plotWidth() {
    return Math.max(10, Math.round(canvas.clientWidth - PAD.left - PAD.right));
  }

  let timer = null;
  function scheduleLoad(delay) {
    if (timer !== null) window.clearTimeout(timer);
    timer = window.setTimeout(load, delay);
  }

  async function load() {
    timer = null;
    const seq = ++state.asked;
    state.askedAt = performance.now();
    const points = plotWidth();
    const from = state.from;
    const to = state.to;
    const path = `/sensors/${sensorId}/series?from=${from.toFixed(3)}&to=${to.toFixed(3)}&points=${points}`;
    canvas.dataset.loading = "1";
    state.inflight = true;
    let doc;
    try {
      doc = await ui.api("GET", path);
    } catch (err) {
      if (seq === state.asked) {
        canvas.dataset.loading = "";
        ui.setStatus("Chart: " + err.message, true);
      }
      return;
    } finally {
      if (seq === state.asked) state.inflight = false;
    }
    if (seq !== state.asked) return; // a newer view was asked meanwhile
    state.data = doc.data;
    state.meta = doc.meta;
    draw();
    state.drawn += 1;
    Object.assign(canvas.dataset, {
      loading: "",
      from: String(from),
      to: String(to),
      points: String(points),
      count: String(doc.data.length),
      bucket: String(doc.meta.bucket_s),
      drawn: String(state.drawn),
      path: "/api/v1" + path,
      max: doc.data.length ? String(Math.max(...doc.data.map((b) => b.max))) : "",
    });
    performance.mark("chart-drawn");
    const info = document.getElementById("chart-info");
    if (info) {
      const bucket = doc.meta.bucket_s;
      info.textContent = doc.data.length
        ? `${doc.data.length} points, ${bucket >= 3600 ? bucket / 3600 + " h" : bucket >= 60 ? bucket / 60 + " min" : bucket + " s"} each`
        : "no readings in this range";
    }
  }

  function yRange() {
    let lo = Infinity;
    let hi = -Infinity;
    for (const b of state.data) {
      if (b.min < lo) lo = b.min;
      if (b.max > hi) hi = b.max;
    }
    for (const t of [state.thresholds.min, state.thresholds.max]) {
      if (t !== null && t !== undefined && state.data.length) {
        lo = Math.min(lo, t);
        hi = Math.max(hi, t);
      }
    }
    if (!isFinite(lo)) return [0, 1];
    if (lo === hi) return [lo - 1, hi + 1];
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  function draw() {
    const [y0, y1] = yRange();
    const span = state.to - state.from;
    const { ctx, x, y, w, h, colors } = frame(canvas, state.from, state.to, y0, y1);
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top, w, h);
    ctx.clip();
    // min..max band: one column per bucket
    const bucket = state.meta ? state.meta.bucket_s : 0;
    const colW = Math.max(1, bucket ? (bucket / span) * w : 1);
    ctx.fillStyle = colors.band;
    for (const b of state.data) {
      const top = y(b.max);
      ctx.fillRect(x(b.ts), top, colW, Math.max(1, y(b.min) - top));
    }
    // average line, broken where buckets are missing (no readings there)
    ctx.strokeStyle = colors.line;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let last = null;
    for (const b of state.data) {
      const xx = x(b.ts + (bucket || 0) / 2);
      if (last !== null && bucket && b.ts - last > bucket * 1.5) ctx.moveTo(xx, y(b.avg));
      else if (last === null) ctx.moveTo(xx, y(b.avg));
      else ctx.lineTo(xx, y(b.avg));
      last = b.ts;
    }
    ctx.stroke();
    // thresholds
    ctx.strokeStyle = colors.alarm;
    ctx.setLineDash([6, 4]);
    for (const t of [state.thresholds.min, state.thresholds.max]) {
      if (t === null || t === undefined) continue;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y(t));
      ctx.lineTo(PAD.left + w, y(t));
      ctx.stroke();
    }
    ctx.restore();
    const label = document.getElementById("chart-range");
    if (label) {
      const fmt = (s) => ui.fmtTime(new Date(s * 1000).toISOString());
      label.textContent = `${fmt(state.from)} – ${fmt(state.to)}`;
    }
  }

  function setView(from, to, following) {
    let span = Math.min(MAX_SPAN, Math.max(MIN_SPAN, to - from));
    const mid = (from + to) / 2;
    from = mid - span / 2;
    to = mid + span / 2;
    if (from < 0) {
      from = 0;
      to = span;
    }
    state.from = from;
    state.to = to;
    state.following = following;
    toHash();
  }

  // -- interaction --------------------------------------------------------------------

  function tsAt(clientX) {
    const rect = canvas.getBoundingClientRect();
    const w = rect.width - PAD.left - PAD.right;
    const frac = Math.min(1, Math.max(0, (clientX - rect.left - PAD.left) / w));
    return state.from + frac * (state.to - state.from);
  }

  canvas.addEventListener(
    "wheel",
    (event) => {
      event.preventDefault();
      const factor = event.deltaY > 0 ? 1.25 : 0.8;
      const at = tsAt(event.clientX);
      setView(at - (at - state.from) * factor, at + (state.to - at) * factor, false);
      draw();
      scheduleLoad(120);
    },
    { passive: false }
  );

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    state.drag = { x: event.clientX, from: state.from, to: state.to };
  });
  canvas.addEventListener("pointermove", (event) => {
    if (!state.drag) return;
    const rect = canvas.getBoundingClientRect();
    const w = rect.width - PAD.left - PAD.right;
    const shift = ((event.clientX - state.drag.x) / w) * (state.drag.to - state.drag.from);
    setView(state.drag.from - shift, state.drag.to - shift, false);
    draw();
  });
  const endDrag = (event) => {
    if (!state.drag) return;
    const moved = Math.abs(event.clientX - state.drag.x) > 2;
    state.drag = null;
    if (moved) scheduleLoad(0);
  };
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("dblclick", () => {
    const to = nowS();
    setView(to - DAY, to, true);
    scheduleLoad(0);
  });

  for (const button of document.querySelectorAll("#ranges button")) {
    button.addEventListener("click", () => {
      if (button.dataset.zoom === "out") {
        const span = state.to - state.from;
        setView(state.from - span, state.to + span, false);
      } else {
        const to = nowS();
        setView(to - Number(button.dataset.range), to, true);
      }
      scheduleLoad(0);
    });
  }

  window.addEventListener("resize", () => scheduleLoad(150));

  window.edgeChart = {
    state,
    load,
    setView(from, to) {
      setView(from, to, false);
      return load();
    },
    setThresholds(min, max) {
      state.thresholds = { min, max };
      if (state.meta) draw();
    },
    // A poll came round: a view that follows "now" moves on and fetches what is new.
    follow() {
      if (!state.following || state.drag || timer !== null || state.inflight) return;
      // Asked less than a refresh ago (the first view, a click): nothing new to fetch yet.
      if (performance.now() - state.askedAt < pollMs * 0.9) return;
      const span = state.to - state.from;
      state.to = nowS();
      state.from = state.to - span;
      scheduleLoad(0);
    },
  };

  fromHash();
  load();
})();
