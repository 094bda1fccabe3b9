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
  const { frame, niceRange } = window.edgePlot;

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
    alarms: [], // [opened, cleared or null] in epoch seconds, of the sensor's alerts
    drag: null,
    drawn: 0,
    hover: null, // index into data of the bucket under the pointer
    scale: null,
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
    showReadout(null); // the buckets changed under the pointer
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
    if (!isFinite(lo)) return [0, 1, 0.2];
    if (lo === hi) return niceRange(lo - 1, hi + 1, 5);
    return niceRange(lo, hi, 5);
  }

  // Where the line breaks: the sensor's usual interval is the median time between the
  // buckets that have readings (a sensor read every 5 min in 15 s buckets is joined, not
  // dotted); a hole over GAP_FACTOR times that (and over a bucket) is drawn as a gap.
  const GAP_FACTOR = 3;
  function gapLimit() {
    const bucket = state.meta ? state.meta.bucket_s : 0;
    const steps = [];
    for (let i = 1; i < state.data.length; i++) steps.push(state.data[i].ts - state.data[i - 1].ts);
    if (!steps.length) return Infinity;
    steps.sort((a, b) => a - b);
    const usual = steps[Math.floor(steps.length / 2)];
    return GAP_FACTOR * Math.max(usual, bucket || 0);
  }

  // The runs of buckets drawn as one line each, as [first, last] indices into state.data.
  function segments() {
    const limit = gapLimit();
    const runs = [];
    let first = 0;
    for (let i = 1; i <= state.data.length; i++) {
      if (i === state.data.length || state.data[i].ts - state.data[i - 1].ts > limit) {
        if (state.data.length) runs.push([first, i - 1]);
        first = i;
      }
    }
    return runs;
  }

  function draw() {
    const [y0, y1, ystep] = yRange();
    const span = state.to - state.from;
    const { ctx, x, y, w, h, colors, yticks } = frame(canvas, state.from, state.to, y0, y1, ystep);
    state.scale = { y0, y1, h, yticks };
    const bucket = state.meta ? state.meta.bucket_s : 0;
    const mid = (b) => x(b.ts + (bucket || 0) / 2);
    ctx.save();
    ctx.beginPath();
    ctx.rect(PAD.left, PAD.top, w, h);
    ctx.clip();
    // alarm periods: the sensor's alerts from opening to clearing (still active: to now)
    ctx.fillStyle = colors.alarm;
    ctx.globalAlpha = 0.12;
    const shaded = [];
    for (const [opened, cleared] of state.alarms) {
      const end = cleared === null ? nowS() : cleared;
      if (end < state.from || opened > state.to) continue;
      shaded.push([opened, end]);
      ctx.fillRect(x(opened), PAD.top, Math.max(1, x(end) - x(opened)), h);
    }
    ctx.globalAlpha = 1;
    // min..max band: one column per bucket, at least a pixel wide
    const colW = Math.max(1, bucket ? (bucket / span) * w : 1);
    ctx.fillStyle = colors.band;
    for (const b of state.data) {
      const top = y(b.max);
      ctx.fillRect(x(b.ts), top, colW, Math.max(1, y(b.min) - top));
    }
    const runs = segments();
    // The envelope: the buckets' max and min joined in the line's colour, so a single
    // reading far off the average (a spike in a day-wide bucket) is drawn at full strength
    // at any zoom, not only as the faint band.
    ctx.strokeStyle = colors.line;
    for (const [lineWidth, keys] of [[1, ["max", "min"]], [1.5, ["avg"]]]) {
      ctx.lineWidth = lineWidth;
      for (const key of keys) {
        ctx.beginPath();
        for (const [first, last] of runs) {
          ctx.moveTo(mid(state.data[first]), y(state.data[first][key]));
          // a run of one bucket: a short tick so it shows
          if (first === last) ctx.lineTo(mid(state.data[first]) + 1, y(state.data[first][key]));
          for (let i = first + 1; i <= last; i++) ctx.lineTo(mid(state.data[i]), y(state.data[i][key]));
        }
        ctx.stroke();
      }
    }
    // thresholds
    ctx.strokeStyle = colors.alarm;
    ctx.lineWidth = 1;
    ctx.setLineDash([6, 4]);
    for (const t of [state.thresholds.min, state.thresholds.max]) {
      if (t === null || t === undefined) continue;
      ctx.beginPath();
      ctx.moveTo(PAD.left, y(t));
      ctx.lineTo(PAD.left + w, y(t));
      ctx.stroke();
    }
    ctx.setLineDash([]);
    // the hovered bucket: a hairline
    const hovered = state.hover !== null ? state.data[state.hover] : null;
    if (hovered) {
      ctx.strokeStyle = colors.ink;
      ctx.beginPath();
      ctx.moveTo(Math.round(mid(hovered)) + 0.5, PAD.top);
      ctx.lineTo(Math.round(mid(hovered)) + 0.5, PAD.top + h);
      ctx.stroke();
    }
    ctx.restore();
    Object.assign(canvas.dataset, {
      yticks: JSON.stringify(yticks),
      alarms: JSON.stringify(shaded),
      gaps: JSON.stringify(runs.slice(1).map(([first], i) => [state.data[runs[i][1]].ts, state.data[first].ts])),
    });
    const label = document.getElementById("chart-range");
    if (label) {
      const fmt = (s) => ui.fmtTime(new Date(s * 1000).toISOString());
      label.textContent = `${fmt(state.from)} – ${fmt(state.to)}`;
    }
  }

  // The readout under the chart for the bucket under the pointer: its time in the console's
  // format (the exact UTC instant in the title) and its value, or for a bucket of several
  // readings their min, max and average.
  function showReadout(index) {
    const node = document.getElementById("chart-readout");
    state.hover = index;
    if (!node) return;
    const b = index !== null ? state.data[index] : null;
    if (!b) {
      node.textContent = "";
      node.removeAttribute("title");
      for (const k of ["ts", "min", "max", "avg", "count"]) delete node.dataset[k];
      return;
    }
    const num = ui.fmtNum;
    node.textContent = b.count > 1
      ? `${ui.fmtTime(b.time)}  min ${num(b.min)}  max ${num(b.max)}  avg ${num(b.avg)}  (${b.count} readings)`
      : `${ui.fmtTime(b.time)}  ${num(b.avg)}`;
    node.title = ui.utc(b.time);
    Object.assign(node.dataset, {
      ts: String(b.ts), min: String(b.min), max: String(b.max), avg: String(b.avg), count: String(b.count),
    });
  }

  function nearest(ts) {
    const bucket = state.meta ? state.meta.bucket_s : 0;
    let best = null;
    let dist = Infinity;
    state.data.forEach((b, i) => {
      const d = Math.abs(b.ts + (bucket || 0) / 2 - ts);
      if (d < dist) {
        dist = d;
        best = i;
      }
    });
    return best;
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
    if (!state.drag) {
      if (!state.data.length) return;
      const index = nearest(tsAt(event.clientX));
      if (index !== state.hover) {
        showReadout(index);
        draw();
      }
      return;
    }
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
  canvas.addEventListener("pointerleave", () => {
    if (state.hover === null) return;
    showReadout(null);
    draw();
  });
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

  // Only a new plot width asks again (one bucket per pixel column); a window that grows
  // taller (a full-page screenshot does) leaves the view and its buckets as they are.
  window.addEventListener("resize", () => {
    if (plotWidth() !== Number(canvas.dataset.points)) scheduleLoad(150);
  });

  window.edgeChart = {
    state,
    load,
    setView(from, to) {
      setView(from, to, false);
      return load();
    },
    // Where a value is drawn, in CSS pixels from the canvas's top (the browser tests).
    yOf(v) {
      const sc = state.scale;
      return PAD.top + (1 - (v - sc.y0) / (sc.y1 - sc.y0)) * sc.h;
    },
    xOf(ts) {
      const w = canvas.clientWidth - PAD.left - PAD.right;
      return PAD.left + ((ts - state.from) / (state.to - state.from)) * w;
    },
    // The sensor's alerts (as GET /alerts answers them) shade their time in alarm.
    setAlarms(alerts) {
      const epoch = (iso) => Date.parse(iso) / 1000;
      state.alarms = alerts.map((a) => [epoch(a.opened_at), a.cleared_at ? epoch(a.cleared_at) : null]);
      if (state.meta) draw();
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
