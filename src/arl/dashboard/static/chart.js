"use strict";
// The returns chart: each agent's return per episode as an SVG polyline, drawn here rather
// than by a charting library (the page loads nothing from elsewhere, and a line per agent
// is all it needs). window.arlChart.draw(container, data) replaces the container's content;
// data is the API's "returns" (arl.dashboard.series.returns_chart). Names from the store
// go in as text nodes only.
(() => {
  const NS = "http://www.w3.org/2000/svg";
  const W = 960;
  const H = 260;
  const M = { left: 64, right: 20, top: 26, bottom: 40 };
  const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"];
  const DOTS_UP_TO = 60; // points a line: with as few as this, each gets a dot too

  function svg(tag, attrs, text) {
    const node = document.createElementNS(NS, tag);
    for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // About `count` round tick values from lo to hi.
  function ticks(lo, hi, count) {
    const span = hi - lo;
    if (!(span > 0)) return [lo];
    // 1, 2 or 5 times a power of ten, the nearest to span / count (as d3's ticks choose).
    const rough = span / count;
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const ratio = rough / power;
    const step = power * (ratio >= Math.sqrt(50) ? 10 : ratio >= Math.sqrt(10) ? 5 : ratio >= Math.sqrt(2) ? 2 : 1);
    const out = [];
    for (let t = Math.ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push(Math.abs(t) < step * 1e-9 ? 0 : t);
    return out;
  }

  function label(value) {
    const abs = Math.abs(value);
    if (abs !== 0 && (abs >= 1e5 || abs < 1e-3)) return value.toExponential(1);
    return String(Math.round(value * 1000) / 1000);
  }

  function extent(data) {
    let lo = Infinity;
    let hi = -Infinity;
    for (const agent of data.agents) {
      for (const [, y] of data.lines[agent]) {
        lo = Math.min(lo, y);
        hi = Math.max(hi, y);
      }
    }
    if (lo === hi) {
      const pad = Math.abs(lo) * 0.1 || 1;
      return [lo - pad, hi + pad];
    }
    const pad = (hi - lo) * 0.05;
    return [lo - pad, hi + pad];
  }

  function draw(container, data) {
    const points = data ? data.agents.reduce((n, agent) => n + data.lines[agent].length, 0) : 0;
    if (!points) {
      const empty = document.createElement("p");
      empty.className = "muted";
      empty.textContent = "No episode has a return yet.";
      container.replaceChildren(empty);
      return;
    }
    const xmax = Math.max(data.episodes - 1, 1);
    const [ylo, yhi] = extent(data);
    const px = (x) => M.left + (x / xmax) * (W - M.left - M.right);
    const py = (y) => H - M.bottom - ((y - ylo) / (yhi - ylo)) * (H - M.top - M.bottom);
    const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img" });
    chart.append(svg("title", {}, "each agent's return per episode"));

    for (const y of ticks(ylo, yhi, 6)) {
      chart.append(svg("line", { class: "grid", x1: M.left, x2: W - M.right, y1: py(y), y2: py(y) }));
      chart.append(svg("text", { x: M.left - 8, y: py(y) + 4, "text-anchor": "end" }, label(y)));
    }
    // x: the episodes' places, labelled from 1.
    for (const n of ticks(1, data.episodes, 8)) {
      if (!Number.isInteger(n)) continue;
      chart.append(svg("line", { class: "axis", x1: px(n - 1), x2: px(n - 1), y1: H - M.bottom, y2: H - M.bottom + 5 }));
      chart.append(svg("text", { x: px(n - 1), y: H - M.bottom + 18, "text-anchor": "middle" }, String(n)));
    }
    chart.append(svg("line", { class: "axis", x1: M.left, x2: W - M.right, y1: H - M.bottom, y2: H - M.bottom }));
    chart.append(svg("text", { x: (M.left + W - M.right) / 2, y: H - 4, "text-anchor": "middle" }, "episode"));
    chart.append(svg("text", { x: 14, y: (M.top + H - M.bottom) / 2, "text-anchor": "middle",
      transform: `rotate(-90 14 ${(M.top + H - M.bottom) / 2})` }, "return"));

    for (const phase of data.phases) {
      const x = phase.x === 0 ? M.left : px(phase.x - 0.5);
      if (phase.x > 0) chart.append(svg("line", { class: "phase", x1: x, x2: x, y1: M.top - 8, y2: H - M.bottom }));
      chart.append(svg("text", { x: x + 4, y: M.top - 12 }, phase.name));
    }

    data.agents.forEach((agent, i) => {
      const color = COLORS[i % COLORS.length];
      const line = data.lines[agent];
      const coords = line.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(" ");
      chart.append(svg("polyline", { points: coords, stroke: color, "data-agent-index": i }));
      if (line.length <= DOTS_UP_TO) {
        for (const [x, y] of line) chart.append(svg("circle", { cx: px(x), cy: py(y), r: 2.5, fill: color }));
      }
    });

    const legend = document.createElement("div");
    legend.className = "legend";
    data.agents.forEach((agent, i) => {
      const item = document.createElement("span");
      const swatch = document.createElement("span");
      swatch.className = "swatch";
      swatch.style.backgroundColor = COLORS[i % COLORS.length];
      item.append(swatch, agent);
      legend.append(item);
    });
    const notes = [];
    if (data.per_point > 1) notes.push(`each point is the mean of ${data.per_point} episodes`);
    if (data.open) notes.push(`${data.open} episode${data.open > 1 ? "s" : ""} still running: return so far`);
    if (notes.length) {
      const note = document.createElement("span");
      note.className = "muted";
      note.textContent = notes.join("; ");
      legend.append(note);
    }
    container.replaceChildren(chart, legend);
  }

  window.arlChart = { draw };
})();
