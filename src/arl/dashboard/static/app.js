"use strict";
// The arl dashboard's page: #/ lists the store's runs, #/run/<id> shows one. Each view asks
// the JSON API again a second after its last answer. Every text from the store goes into
// the page as text (text nodes, textContent), never as markup.
(() => {
  const POLL_MS = 1000;
  const ANSWER_MS = 10000; // a request unanswered this long: the dashboard is said not to answer
  const main = document.getElementById("main");
  const storeLine = document.getElementById("store");
  const liveLine = document.getElementById("live");
  const STATUSES = ["running", "scheduled", "finished", "failed", "interrupted"];
  let generation = 0; // the view being shown; an answer for an older one is dropped
  let timer = null;

  // An element with attributes (from this script only) and children (nodes, or text).
  function h(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined) continue;
      if (name === "class") node.className = value;
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  // -- formats ----------------------------------------------------------------------------

  const NONE = "–";
  const pad = (n) => String(n).padStart(2, "0");
  const count = (n) => (n === null || n === undefined ? NONE : Number(n).toLocaleString("en-US"));

  function perSecond(rate) {
    if (rate === null || rate === undefined) return NONE;
    return rate >= 100 ? Math.round(rate).toLocaleString("en-US") : rate.toFixed(1);
  }

  function when(iso) {
    if (!iso) return NONE;
    const d = new Date(iso);
    if (isNaN(d)) return String(iso);
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return NONE;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    const s = Math.round(seconds);
    const [hours, minutes, rest] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60), s % 60];
    return hours ? `${hours} h ${pad(minutes)} min` : `${minutes} min ${pad(rest)} s`;
  }

  function value(v) {
    if (v === null || v === undefined) return NONE;
    if (Number.isInteger(v)) return v.toLocaleString("en-US");
    const abs = Math.abs(v);
    return abs !== 0 && (abs >= 1e6 || abs < 1e-3) ? v.toExponential(3) : String(Math.round(v * 10000) / 10000);
  }

  function status(run) {
    const word = String(run.status || "").toLowerCase();
    const kind = STATUSES.includes(word) ? word : "other";
    return h("span", { class: `status status-${kind}` }, run.died ? `${run.status} (process died)` : run.status);
  }

  const num = (text, cls) => h("td", { class: `num ${cls || ""}`.trim() }, text);
  const head = (...names) => h("thead", null, h("tr", null, names.map((n) => h("th", { class: n.startsWith("#") ? "num" : null }, n.replace(/^#/, "")))));

  // -- the store and the connection -------------------------------------------------------

  function showStore(store, notice) {
    storeLine.textContent = `store: ${store.location}`;
    notice.replaceChildren();
    notice.hidden = true;
    if (!store.found) {
      notice.className = "notice";
      notice.append(`No store at ${store.location} yet. Its runs show here as soon as arl-run writes one there ` +
        "(arl-run FILE with the same --store URL or $ARL_STORE_URL).");
      notice.hidden = false;
    } else if (store.error) {
      notice.className = "notice bad";
      notice.append(h("strong", null, "The store cannot be read: "), store.error);
      notice.hidden = false;
    }
  }

  function answered(ok, why) {
    const now = new Date();
    liveLine.className = ok ? "muted" : "error-line";
    liveLine.textContent = ok
      ? `updated ${pad(now.getHours())}:${pad(now.getMinutes())}:${pad(now.getSeconds())}`
      : `the dashboard does not answer (${why}): is arl-run dashboard still running?`;
  }

  // An answer without the store's state: the server's own words (busy, failed, no such id).
  function refused(error) {
    liveLine.className = "error-line";
    liveLine.textContent = `the dashboard answered: ${error}`;
  }

  // The answer's JSON; one of another kind (a proxy's error page) as {error: its text}.
  async function answerOf(response) {
    const text = await response.text();
    try {
      return JSON.parse(text);
    } catch {
      return { error: `HTTP ${response.status}: ${text.slice(0, 300)}` };
    }
  }

  async function poll(view, url, render) {
    try {
      const response = await fetch(url, { cache: "no-store", signal: AbortSignal.timeout(ANSWER_MS) });
      const body = await answerOf(response);
      if (view !== generation) return;
      if (body.store) {
        render(body, response.status);
        answered(true);
      } else {
        refused(body.error || `HTTP ${response.status}`);
      }
    } catch (error) {
      if (view !== generation) return;
      answered(false, error.name === "TimeoutError" ? `nothing in ${ANSWER_MS / 1000} s` : error.message);
    }
    timer = setTimeout(() => poll(view, url, render), POLL_MS);
  }

  // Redraw a part only when what it shows changed (keeps a selection, saves work).
  function changes() {
    const last = new Map();
    return (part, data) => {
      const text = JSON.stringify(data);
      if (last.get(part) === text) return false;
      last.set(part, text);
      return true;
    };
  }

  // -- #/: the runs -----------------------------------------------------------------------

  function runsView() {
    const notice = h("div", { id: "notice", hidden: "" });
    const summary = h("p", { id: "runs-summary", class: "muted" });
    const body = h("tbody", { id: "runs-body" });
    const table = h("table", { id: "runs", class: "grid" },
      head("#id", "run", "experiment", "status", "started", "#duration", "#phases", "#episodes", "#steps", "#steps/s", "error"),
      body);
    main.replaceChildren(h("h1", null, "Runs"), notice, summary, table);
    return (data) => {
      showStore(data.store, notice);
      const runs = data.runs || [];
      summary.textContent = runs.length < data.total
        ? `the newest ${runs.length} of ${count(data.total)} runs`
        : runs.length ? `${runs.length} run${runs.length > 1 ? "s" : ""}, newest first` : "";
      if (data.store.found && !data.store.error && !runs.length) summary.textContent = "The store holds no runs yet.";
      body.replaceChildren(...runs.map(runRow));
    };
  }

  function runRow(run) {
    const link = `#/run/${Number(run.id)}`;
    const row = h("tr", { class: "link", "data-run-id": Number(run.id) },
      num(run.id, "id"),
      h("td", { class: "uid" }, h("a", { href: link }, run.uid)),
      h("td", { class: "experiment" }, run.experiment_uid ?? NONE),
      h("td", { class: "status-cell" }, status(run)),
      h("td", { class: "started" }, when(run.started_at)),
      num(duration(run.duration_s), "duration"),
      num(count(run.phases), "phases"),
      num(count(run.episodes), "episodes"),
      num(count(run.steps), "steps"),
      num(perSecond(run.steps_per_s), "rate"),
      h("td", { class: "error" }, run.error ?? ""));
    row.addEventListener("click", (event) => {
      if (!event.target.closest("a")) location.hash = link;
    });
    return row;
  }

  // -- #/run/<id>: one run ----------------------------------------------------------------

  function runView(id) {
    const title = h("h1", null, `Run ${id}`);
    const notice = h("div", { id: "notice", hidden: "" });
    const facts = h("dl", { id: "facts", class: "facts" });
    const errors = h("section", { id: "errors", hidden: "" });
    const phases = h("tbody", { id: "phases-body" });
    const chart = h("div", { id: "returns", class: "chart-box" });
    const metrics = h("tbody", { id: "metrics-body" });
    const events = h("tbody", { id: "events-body" });
    const eventsNote = h("p", { class: "muted" });
    const changed = changes();
    main.replaceChildren(
      h("p", null, h("a", { href: "#/" }, "← all runs")), title, notice, facts, errors,
      h("h2", null, "Phases"),
      h("table", { class: "grid" }, head("#phase", "name", "mode", "started", "#duration", "#episodes", "#steps", "end"), phases),
      h("h2", null, "Returns per agent over episodes"), chart,
      h("h2", null, "Metrics"),
      h("table", { class: "grid" }, head("phase", "agent", "worker", "name", "#values", "#last", "#min", "#max", "#last step"), metrics),
      h("h2", null, "Events"), eventsNote,
      h("table", { class: "grid" }, head("at", "kind", "detail"), events));
    return (data, httpStatus) => {
      showStore(data.store, notice);
      const run = data.run;
      if (!run) {
        if (httpStatus === 404) {
          notice.className = "notice bad";
          notice.replaceChildren(data.error || `no run ${id}`);
          notice.hidden = false;
        }
        return;
      }
      title.replaceChildren(h("span", { id: "run-uid" }, run.uid), status(run));
      document.title = `${run.uid} · arl dashboard`;
      facts.replaceChildren(...runFacts(run));
      if (changed("errors", data.errors)) showErrors(errors, data.errors);
      phases.replaceChildren(...data.phases.map(phaseRow));
      if (changed("returns", data.returns)) window.arlChart.draw(chart, data.returns);
      if (changed("metrics", data.metrics)) {
        metrics.replaceChildren(...(data.metrics.length ? data.metrics.map(metricRow) : [emptyRow(9, "No metrics logged.")]));
      }
      if (changed("events", data.events)) {
        events.replaceChildren(...(data.events.length ? data.events.map(eventRow) : [emptyRow(3, "No events.")]));
      }
      eventsNote.textContent = data.events_total > data.events.length
        ? `the newest ${data.events.length} of ${count(data.events_total)}, newest first` : "newest first";
    };
  }

  function runFacts(run) {
    const fact = (name, text, id) => h("div", null, h("dt", null, name), h("dd", { id }, text));
    return [
      fact("id", String(run.id)),
      fact("experiment", run.experiment_uid ?? NONE),
      fact("seed", run.seed), // text: a seed above 2**53 would lose digits as a number
      fact("host", `${run.host}${run.pid ? ` (pid ${run.pid})` : ""}`),
      fact("started", when(run.started_at)),
      fact("ended", when(run.ended_at)),
      fact("duration", duration(run.duration_s)),
      fact("end reason", run.end_reason ?? NONE),
      fact("phases", count(run.phases)),
      fact("episodes", count(run.episodes), "run-episodes"),
      fact("steps", count(run.steps), "run-steps"),
      fact("steps/s", perSecond(run.steps_per_s), "run-rate"),
      fact("arl", run.arl_version),
    ];
  }

  function showErrors(section, errors) {
    section.hidden = !errors.length;
    section.replaceChildren(h("h2", null, "Errors"), ...errors.map((error) =>
      h("div", { class: "error-box" },
        h("div", { class: "muted" }, `${error.source} · ${when(error.at)}`),
        h("pre", { class: "error-text", id: error.source === "run" ? "run-error" : null }, error.text))));
  }

  function phaseRow(phase) {
    return h("tr", null,
      num(phase.phase), h("td", null, phase.name), h("td", null, phase.mode), h("td", null, when(phase.started_at)),
      num(duration(phase.duration_s)), num(count(phase.episodes)), num(count(phase.steps)),
      h("td", null, phase.end_reason ?? (phase.ended_at ? NONE : "running")));
  }

  function metricRow(metric) {
    return h("tr", null,
      h("td", null, metric.phase_name), h("td", null, metric.agent),
      h("td", null, metric.worker === null ? "brain" : String(metric.worker)), h("td", null, metric.name),
      num(count(metric.count)), num(value(metric.last)), num(value(metric.min)), num(value(metric.max)),
      num(count(metric.last_step)));
  }

  function eventRow(event) {
    return h("tr", null,
      h("td", null, when(event.at)), h("td", null, event.kind),
      h("td", { class: "detail" }, h("code", null, JSON.stringify(event.detail))));
  }

  const emptyRow = (span, text) => h("tr", null, h("td", { colspan: span, class: "muted" }, text));

  // -- routing ----------------------------------------------------------------------------

  function route() {
    generation += 1;
    clearTimeout(timer);
    const match = /^#\/run\/(\d+)$/.exec(location.hash);
    document.title = "arl dashboard";
    if (match) poll(generation, `api/runs/${match[1]}`, runView(match[1]));
    else poll(generation, "api/runs", runsView());
  }

  window.addEventListener("hashchange", route);
  route();
})();
