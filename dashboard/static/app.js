// Saga dashboard: the studies page (#/) and one study (#/study/ID), drawn from the JSON API of
// dashboard/app.py with ECharts (vendored). Every value from the server is put in the page as text,
// never as HTML.
"use strict";

const TRIAL_STATES = ["PENDING", "RUNNING", "SUCCEEDED", "STOPPED_EARLY", "FAILED", "INFEASIBLE"];
const LIVE_EVENTS = ["snapshot", "trial_created", "trial_leased", "progress", "trial_finished", "trial_requeued",
  "phase_started", "study_finished"];
const INSIGHT_EVENTS = new Set(["snapshot", "trial_finished", "phase_started", "study_finished"]);

let settings = {actions: false, export_to: null};
let view = null;  // what the page shows now; teardown() ends its timers, streams and charts

// ---------------------------------------------------------------- helpers
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, options) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.error || `${response.status} ${response.statusText}`);
  return body;
}

function num(v, digits = 4) {
  if (v === null || v === undefined) return "-";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toFixed(digits);
  return String(v);
}

function paramText(params) {
  return Object.entries(params || {}).map(([k, v]) =>
    `${k}=${typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : v}`).join(", ");
}

function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "-";
}

function stateBadge(state) {
  return el("span", {class: `state state-${state}`}, state.toLowerCase().replace("_", " "));
}

function progressBar(done, total) {
  const bar = el("span", {class: "bar"}, el("span", {style: `width:${total ? (100 * done / total).toFixed(0) : 0}%`}));
  return el("span", {}, bar, `${done}/${total}`);
}

function setLive(text, on) {
  const live = document.getElementById("live");
  live.textContent = text;
  live.className = on ? "live on" : "live";
}

function chart(container) {
  const c = echarts.init(container, null, {renderer: "canvas"});
  view.charts.push(c);
  return c;
}

function teardown() {
  if (!view) return;
  view.timers.forEach(clearInterval);
  if (view.source) view.source.close();
  view.charts.forEach(c => c.dispose());
  view = null;
}

window.addEventListener("resize", () => view && view.charts.forEach(c => c.resize()));

// ---------------------------------------------------------------- studies page
async function showStudies() {
  view = {timers: [], charts: [], source: null};
  document.getElementById("crumb").textContent = "studies";
  setLive("", false);
  const main = document.getElementById("main");
  const refresh = async () => {
    try {
      renderStudies(main, await api("api/studies"));
    } catch (e) {
      main.replaceChildren(el("p", {class: "error"}, `Cannot read the studies: ${e.message}`));
    }
  };
  await refresh();
  view.timers.push(setInterval(refresh, 5000));
}

function renderStudies(main, studies) {
  const rows = studies.map(s => el("tr", {"data-study": s.study_id},
    el("td", {class: "text"}, el("a", {href: `#/study/${s.study_id}`}, s.study_id)),
    el("td", {class: "text"}, s.name),
    el("td", {class: "text"}, stateBadge(s.state)),
    el("td", {class: "text"}, s.strategy),
    el("td", {class: "text"}, progressBar(s.trials_finished, s.trials_total)),
    el("td", {}, s.running),
    el("td", {}, s.best ? num(s.best.value) : "-"),
    el("td", {}, s.failures),
    el("td", {class: "text"}, when(s.created)),
    el("td", {class: "text"}, s.message || "")));
  main.replaceChildren(
    el("h1", {}, "Studies"),
    studies.length ? el("table", {id: "studies"},
      el("thead", {}, el("tr", {}, ["study", "name", "state", "strategy", "progress", "running", "best",
        "failures", "created", "message"].map((h, i) => el("th", {class: [0, 1, 2, 3, 4, 8, 9].includes(i) ? "text" : ""}, h)))),
      el("tbody", {}, rows))
      : el("p", {class: "note"}, "No studies yet: saga study create SPEC"));
}

// ---------------------------------------------------------------- one study
function studySkeleton(id) {
  const section = (key, title, ...body) => el("section", {id: key}, el("h2", {}, title), ...body);
  return el("div", {},
    el("div", {id: "head"}, el("h1", {}, id)),
    el("div", {id: "actions", class: "actions"}),
    section("progress", "Best so far, per phase", el("div", {class: "grid"},
      el("div", {class: "card"}, el("div", {id: "best-chart", class: "chart"})),
      el("div", {class: "card"}, el("div", {id: "curves-chart", class: "chart"})))),
    section("analysis", "Parameters",
      el("div", {class: "toolbar"}, el("label", {}, "phase ", el("select", {id: "phase-select"})),
        el("span", {class: "note", id: "analysis-note"})),
      el("div", {class: "grid"},
        el("div", {class: "card"}, el("h3", {}, "Parallel coordinates"), el("div", {id: "parallel-chart", class: "chart tall"})),
        el("div", {class: "card"}, el("h3", {}, "Importance"), el("div", {id: "importance-chart", class: "chart"}),
          el("p", {class: "note", id: "importance-note"})),
        el("div", {class: "card"}, el("h3", {}, "GP surrogate"), el("div", {id: "surrogate-chart", class: "chart"}),
          el("p", {class: "note", id: "surrogate-note"})))),
    section("trials", "Trials",
      el("div", {class: "toolbar"},
        el("input", {id: "trial-filter", type: "search", placeholder: "filter: text in any column"}),
        el("select", {id: "state-filter"}, el("option", {value: ""}, "every state"),
          TRIAL_STATES.map(s => el("option", {value: s}, s.toLowerCase().replace("_", " "))))),
      el("div", {id: "trial-table"})),
    section("evaluation", "Best trial on the held-out data", el("div", {id: "evaluation-body"})));
}

async function showStudy(id) {
  view = {id, timers: [], charts: [], source: null, overview: null, insight: null, phase: null,
          sort: {key: "trial", dir: 1}, filter: "", state: "", pending: null, pendingInsight: false};
  document.getElementById("crumb").textContent = `study ${id}`;
  const main = document.getElementById("main");
  main.replaceChildren(studySkeleton(id));
  for (const key of ["best", "curves", "parallel", "importance", "surrogate"]) {
    view[`${key}Chart`] = chart(document.getElementById(`${key}-chart`));
  }
  document.getElementById("trial-filter").addEventListener("input", e => { view.filter = e.target.value; renderTrials(); });
  document.getElementById("state-filter").addEventListener("change", e => { view.state = e.target.value; renderTrials(); });
  document.getElementById("phase-select").addEventListener("change", e => { view.phase = Number(e.target.value); renderAnalysis(); });
  try {
    await refresh(true);
  } catch (e) {
    main.replaceChildren(el("p", {class: "error"}, `Cannot read study ${id}: ${e.message}`));
    return;
  }
  listen(id);
}

function listen(id) {
  const source = new EventSource(`api/studies/${encodeURIComponent(id)}/events`);
  view.source = source;
  source.onopen = () => setLive("live", true);
  source.onerror = () => { if (view && view.source === source) setLive("reconnecting…", false); };
  for (const name of LIVE_EVENTS) {
    source.addEventListener(name, message => {
      const ev = JSON.parse(message.data);
      const about = ev.trial ? ` trial ${ev.trial.number}` : "";
      setLive(`live · ${name.replace("_", " ")}${about} · ${ev.finished}/${ev.total}`, true);
      scheduleRefresh(INSIGHT_EVENTS.has(name));
    });
  }
  source.addEventListener("failure", message => setLive(`stream failed: ${JSON.parse(message.data).message}`, false));
  source.addEventListener("end", () => { source.close(); setLive("study ended", false); scheduleRefresh(true); });
}

function scheduleRefresh(withInsight) {
  if (!view) return;
  view.pendingInsight = view.pendingInsight || withInsight;
  if (view.pending) return;
  view.pending = setTimeout(async () => {
    if (!view) return;
    const insight = view.pendingInsight;
    view.pending = null;
    view.pendingInsight = false;
    try { await refresh(insight); } catch (e) { setLive(`refresh failed: ${e.message}`, false); }
  }, 400);
}

async function refresh(withInsight) {
  const id = view.id;
  const overview = await api(`api/studies/${encodeURIComponent(id)}`);
  if (!view || view.id !== id) return;
  view.overview = overview;
  if (view.phase === null || !overview.phases.some(p => p.index === view.phase)) {
    const started = overview.phases.filter(p => p.space.length);
    view.phase = (started.length ? started[started.length - 1] : overview.phases[0]).index;
  }
  renderHead();
  renderProgress();
  renderTrials();
  renderAnalysis();
  if (withInsight) {
    const insight = await api(`api/studies/${encodeURIComponent(id)}/insight`);
    if (!view || view.id !== id) return;
    view.insight = insight;
    renderAnalysis();
    renderEvaluation();
  }
}

function renderHead() {
  const o = view.overview, s = o.summary;
  const facts = [["state", stateBadge(s.state)], ["strategy", s.strategy],
    ["objective", `${o.objective.metric} (${o.objective.maximize ? "maximize" : "minimize"})`],
    ["progress", progressBar(s.trials_finished, s.trials_total)], ["running", s.running],
    ["failures", s.failures], ["current phase", s.current_phase],
    ["best", s.best ? `${num(s.best.value)} (trial ${s.best.trial})` : "none yet"],
    ["created", when(s.created)]];
  document.getElementById("head").replaceChildren(...[
    el("h1", {}, `${s.name} `, el("span", {class: "note"}, s.study_id)),
    s.message ? el("p", {class: "note"}, s.message) : null,
    el("div", {class: "facts"}, facts.map(([k, v]) => el("span", {}, el("b", {}, `${k}: `), v))),
    s.best ? el("p", {class: "note", id: "best-params"}, `best parameters: ${paramText(s.best.parameters)}`) : null,
  ].filter(Boolean));
  renderActions();
}

function renderActions() {
  const box = document.getElementById("actions");
  if (!settings.actions) { box.replaceChildren(); return; }
  if (box.childElementCount) {  // keep what the user typed; update what the state allows
    document.getElementById("stop-study").disabled = view.overview.summary.state !== "ACTIVE";
    document.getElementById("export-best").disabled = !view.overview.summary.best;
    return;
  }
  const s = view.overview.summary;
  const status = el("span", {id: "action-status", class: "note"});
  const name = el("input", {id: "model-name", value: s.name.replace(/[^A-Za-z0-9_.-]+/g, "-").replace(/^[-.]+/, "") || "model",
    size: 18, "aria-label": "model name"});
  const stop = el("button", {id: "stop-study", class: "danger", disabled: s.state !== "ACTIVE", onclick: async () => {
    stop.disabled = true;
    try {
      const r = await api(`api/studies/${encodeURIComponent(view.id)}/stop`, {method: "POST"});
      status.textContent = `study ${r.study_id} is ${r.state.toLowerCase()}`;
      scheduleRefresh(true);
    } catch (e) { status.textContent = `stop failed: ${e.message}`; stop.disabled = false; }
  }}, "Stop study");
  const exportButton = el("button", {id: "export-best", disabled: !s.best, onclick: async () => {
    try {
      const job = await api(`api/studies/${encodeURIComponent(view.id)}/export`, {method: "POST",
        headers: {"Content-Type": "application/json"}, body: JSON.stringify({model_name: name.value})});
      followJob(job, status);
    } catch (e) { status.textContent = `export refused: ${e.message}`; }
  }}, "Export best trial");
  const target = settings.export_to ? `to ${settings.export_to}` : "(no --export-to: export is off)";
  box.replaceChildren(stop, el("span", {}, "model name ", name), exportButton, el("span", {class: "note"}, target), status,
    el("pre", {id: "job-output", class: "job", hidden: true}));
}

function followJob(job, status) {
  const out = document.getElementById("job-output");
  const show = j => {
    status.textContent = `export ${j.id}: ${j.state}`;
    out.hidden = false;
    out.textContent = j.output.join("\n");
  };
  show(job);
  const timer = setInterval(async () => {
    try {
      const j = await api(`api/jobs/${job.id}`);
      show(j);
      if (j.state !== "running") clearInterval(timer);
    } catch (e) { clearInterval(timer); status.textContent = `export ${job.id}: ${e.message}`; }
  }, 2000);
  view.timers.push(timer);
}

function renderProgress() {
  const o = view.overview;
  const series = [];
  for (const p of o.phases) {
    const idx = p.values.map((_, i) => i);
    series.push({name: `${p.name}: best so far`, type: "line", step: "end", showSymbol: false,
      data: idx.map(i => [i, p.best_so_far[i]]).filter(d => d[1] !== null)});
    series.push({name: `${p.name}: trials`, type: "scatter", symbolSize: 7,
      data: idx.map(i => [i, p.values[i], p.trial_numbers[i]]).filter(d => d[1] !== null)});
  }
  view.bestChart.setOption({
    title: {text: `${o.objective.metric}: best so far`, textStyle: {fontSize: 13}},
    tooltip: {trigger: "item", formatter: p => `${p.seriesName}<br>trial ${p.data[2] ?? ""} · ${num(p.data[1])}`},
    legend: {type: "scroll", bottom: 0}, grid: {left: 50, right: 20, top: 40, bottom: 50},
    xAxis: {type: "value", name: "trial in phase", minInterval: 1}, yAxis: {type: "value", scale: true}, series,
  }, true);
  view.curvesChart.setOption({
    title: {text: `${o.curve_metric} per epoch, every trial`, textStyle: {fontSize: 13}},
    tooltip: {trigger: "item", formatter: p => `trial ${p.seriesName} · epoch ${p.data[0] + 1}: ${num(p.data[1])}`},
    grid: {left: 50, right: 20, top: 40, bottom: 40},
    xAxis: {type: "value", name: "epoch", minInterval: 1}, yAxis: {type: "value", scale: true},
    series: o.curves.map(c => ({name: String(c.trial), type: "line", showSymbol: false, data: c.points,
      lineStyle: {width: c.state === "RUNNING" ? 2.5 : 1.2}})),
  }, true);
}

function phaseTrials(phase) {
  return view.overview.trials.filter(t => t.phase === phase.name);
}

function axisFor(param, i) {
  if (param.type === "categorical") return {dim: i, name: param.name, type: "category", data: param.values};
  if (param.scale === "log") return {dim: i, name: param.name, type: "log"};
  return {dim: i, name: param.name, type: "value", min: param.low, max: param.high};
}

function renderAnalysis() {
  const o = view.overview;
  const select = document.getElementById("phase-select");
  select.replaceChildren(...o.phases.map(p => el("option", {value: p.index, selected: p.index === view.phase},
    `${p.index}: ${p.name}`)));
  const phase = o.phases.find(p => p.index === view.phase);
  const note = document.getElementById("analysis-note");
  note.textContent = phase.space.length ? `${phase.finished}/${phase.budget} trials finished` : "this phase has not started";
  const rows = phaseTrials(phase).filter(t => t.value !== null);
  const axes = phase.space.map(axisFor);
  axes.push({dim: axes.length, name: o.objective.metric, type: "value", scale: true});
  const values = rows.map(t => t.value);
  view.parallelChart.setOption({
    parallelAxis: axes, parallel: {left: 60, right: 90, top: 40, bottom: 30},
    // colour by the objective: the better a trial, the bluer its line
    visualMap: values.length ? {min: Math.min(...values), max: Math.max(...values), dimension: axes.length - 1,
      inRange: {color: o.objective.maximize ? ["#d94e5d", "#eac736", "#50a3ba"] : ["#50a3ba", "#eac736", "#d94e5d"]},
      right: 0, top: "middle", calculable: true} : undefined,
    tooltip: {trigger: "item", formatter: p => `trial ${p.data[axes.length]}`},
    series: [{type: "parallel", lineStyle: {width: 2, opacity: 0.7},
      data: rows.map(t => [...phase.space.map(p => t.parameters[p.name]), t.value, t.trial])}],
  }, true);
  renderInsight(phase);
}

function renderInsight(phase) {
  const insight = view.insight && view.insight.phases.find(p => p.index === phase.index);
  const impNote = document.getElementById("importance-note");
  const surNote = document.getElementById("surrogate-note");
  if (!insight) { impNote.textContent = surNote.textContent = "computing…"; return; }
  const imp = insight.importance;
  impNote.textContent = imp ? `${imp.method}, ${imp.observations} observations` : insight.importance_note;
  view.importanceChart.setOption({
    grid: {left: 140, right: 30, top: 10, bottom: 30}, tooltip: {trigger: "axis"},
    xAxis: {type: "value", max: 1}, yAxis: {type: "category", inverse: true, data: imp ? imp.parameters : []},
    series: [{type: "bar", data: imp ? imp.importances : [], label: {show: true, position: "right",
      formatter: p => p.value.toFixed(2)}}],
  }, true);
  const s = insight.surrogate;
  surNote.textContent = s ? `mean ± std of the GP refit on this phase's observations; EI marks the next proposal (${num(s.next_point.join(", "))})`
    : insight.surrogate_note;
  view.surrogateChart.setOption(s ? (s.parameters.length === 1 ? surrogate1d(s) : surrogate2d(s)) : {series: []}, true);
}

function surrogate1d(s) {
  const categorical = typeof s.axes[0][0] === "string";
  const x = s.axes[0];
  const pair = arr => x.map((v, i) => [v, arr[i]]);
  return {
    tooltip: {trigger: "axis"}, legend: {bottom: 0}, grid: {left: 55, right: 55, top: 20, bottom: 60},
    xAxis: categorical ? {type: "category", data: x, name: s.parameters[0]}
      : {type: s.log_scale[0] ? "log" : "value", name: s.parameters[0], min: x[0], max: x[x.length - 1]},
    yAxis: [{type: "value", scale: true, name: "objective"}, {type: "value", name: "EI", splitLine: {show: false}}],
    series: [
      {name: "mean", type: "line", showSymbol: false, data: pair(s.mean)},
      {name: "mean - std", type: "line", showSymbol: false, lineStyle: {type: "dashed", width: 1}, data: pair(s.mean.map((m, i) => m - s.std[i]))},
      {name: "mean + std", type: "line", showSymbol: false, lineStyle: {type: "dashed", width: 1}, data: pair(s.mean.map((m, i) => m + s.std[i]))},
      {name: "expected improvement", type: "line", yAxisIndex: 1, showSymbol: false, areaStyle: {opacity: 0.15}, data: pair(s.ei)},
      {name: "observations", type: "scatter", symbolSize: 9, data: s.observed.map(([p, v]) => [p[0], v])},
    ],
  };
}

function surrogate2d(s) {
  const label = v => typeof v === "number" ? v.toPrecision(3) : String(v);
  const data = [];
  s.mean.forEach((row, i) => row.forEach((m, j) => data.push([i, j, m])));
  const flat = data.map(d => d[2]);
  return {
    tooltip: {formatter: p => `${s.parameters[0]}=${label(s.axes[0][p.data[0]])}, ${s.parameters[1]}=${label(s.axes[1][p.data[1]])}: ${num(p.data[2])}`},
    grid: {left: 80, right: 80, top: 20, bottom: 50},
    xAxis: {type: "category", name: s.parameters[0], data: s.axes[0].map(label)},
    yAxis: {type: "category", name: s.parameters[1], data: s.axes[1].map(label)},
    visualMap: {min: Math.min(...flat), max: Math.max(...flat), calculable: true, right: 0, top: "middle"},
    series: [{name: "mean", type: "heatmap", data}],
  };
}

const TRIAL_COLUMNS = [["#", "trial"], ["phase", "phase"], ["state", "state"], ["value", "value"], ["epochs", "epochs"],
  ["seconds", "duration_s"], ["worker", "worker"], ["ended by", "stopped"], ["reason", "detail"], ["parameters", "parameters"]];
const TEXT_COLUMNS = new Set(["phase", "state", "worker", "stopped", "detail", "parameters"]);

function cellText(t, key) {
  if (key === "parameters") return paramText(t.parameters);
  if (key === "duration_s") return t.duration_s === null ? "-" : t.duration_s.toFixed(0);
  if (key === "detail") return (t.detail || "").split("\n")[0];
  return num(t[key]);
}

function renderTrials() {
  if (!view || !view.overview) return;
  const {key, dir} = view.sort;
  const needle = view.filter.trim().toLowerCase();
  const best = view.overview.summary.best;
  const rows = view.overview.trials
    .filter(t => !view.state || t.state === view.state)
    .filter(t => !needle || TRIAL_COLUMNS.some(([, k]) => cellText(t, k).toLowerCase().includes(needle)))
    .sort((a, b) => {
      const x = key === "parameters" ? paramText(a.parameters) : a[key], y = key === "parameters" ? paramText(b.parameters) : b[key];
      if (x === y) return a.trial - b.trial;
      if (x === null || x === undefined) return 1;
      if (y === null || y === undefined) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  const head = TRIAL_COLUMNS.map(([label, k]) => el("th", {
    class: `sortable ${TEXT_COLUMNS.has(k) ? "text" : ""} ${k === key ? (dir > 0 ? "sorted-asc" : "sorted-desc") : ""}`,
    "data-key": k, onclick: () => { view.sort = {key: k, dir: k === key ? -dir : 1}; renderTrials(); }}, label));
  const body = rows.map(t => el("tr", {"data-trial": t.id, class: best && best.trial_id === t.id ? "best" : ""},
    TRIAL_COLUMNS.map(([, k]) => el("td", {class: k === "parameters" ? "params" : TEXT_COLUMNS.has(k) ? "text" : ""},
      k === "state" ? stateBadge(t.state) : cellText(t, k)))));
  document.getElementById("trial-table").replaceChildren(
    el("p", {class: "note"}, `${rows.length} of ${view.overview.trials.length} trials`),
    el("table", {id: "trials-table"}, el("thead", {}, el("tr", {}, head)), el("tbody", {}, body)));
}

function table(columns, rows, rowClass) {
  return el("table", {}, el("thead", {}, el("tr", {}, columns.map(([h, k]) => el("th", {class: typeof rows[0]?.[k] === "string" ? "text" : ""}, h)))),
    el("tbody", {}, rows.map(r => el("tr", {class: rowClass ? rowClass(r) : ""},
      columns.map(([, k]) => el("td", {class: typeof r[k] === "string" ? "text" : ""}, num(r[k], 3)))))));
}

function renderEvaluation() {
  const box = document.getElementById("evaluation-body");
  const ev = view.insight.evaluation;
  if (!ev.splits.length) {
    box.replaceChildren(el("p", {class: "note"}, ev.trial_id ? `Trial ${ev.trial} (${ev.trial_id}): ${ev.note}` : ev.note));
    return;
  }
  const parts = [el("p", {class: "note"}, `Trial ${ev.trial} (${ev.trial_id}). The test split was never seen by the optimizer: quote its numbers.`)];
  for (const split of ev.splits) {
    parts.push(el("h3", {}, `${split.split}: ${split.samples} images, accuracy ${num(split.accuracy)}, MCC ${num(split.mcc)}`));
    const cols = [["class", "class"], ...split.columns.map(c => [c, c])];
    const grid = el("div", {class: "grid"}, el("div", {}, table(cols, split.per_class, r => r.class === "Average" ? "average" : "")),
      el("div", {class: "card"}, el("div", {class: "chart", id: `confusion-${split.split}`})));
    parts.push(grid);
    if (split.baselines) {
      parts.push(el("h3", {}, "Against the dataset paper's baselines"), el("p", {class: "note"}, split.baselines.source),
        table([["method", "method"], ["F1", "f1"], ["ACC", "accuracy"], ["MCC", "mcc"], ["PREC", "precision"],
          ["REC", "recall"], ["SPEC", "specificity"]], split.baselines.rows, r => r.method.startsWith("This study") ? "best" : ""));
    }
  }
  (view.confusionCharts || []).forEach(c => { c.dispose(); view.charts.splice(view.charts.indexOf(c), 1); });
  view.confusionCharts = [];
  box.replaceChildren(...parts);
  for (const split of ev.splits) {
    const c = chart(document.getElementById(`confusion-${split.split}`));
    view.confusionCharts.push(c);
    const data = [];
    split.confusion_matrix.forEach((row, i) => row.forEach((n, j) => data.push([j, i, n])));
    c.setOption({
      title: {text: `confusion matrix (${split.split})`, textStyle: {fontSize: 13}}, tooltip: {},
      grid: {left: 100, right: 20, top: 40, bottom: 70},
      xAxis: {type: "category", data: split.classes, name: "predicted", axisLabel: {rotate: 30}},
      yAxis: {type: "category", data: split.classes, name: "true", inverse: true},
      visualMap: {min: 0, max: Math.max(1, ...data.map(d => d[2])), show: false, inRange: {color: ["#f7fbff", "#08519c"]}},
      series: [{type: "heatmap", data, label: {show: true}}],
    });
  }
}

// ---------------------------------------------------------------- routing
function route() {
  teardown();
  const m = location.hash.match(/^#\/study\/([A-Za-z0-9_-]+)/);
  if (m) showStudy(m[1]); else showStudies();
}

window.addEventListener("hashchange", route);
window.addEventListener("DOMContentLoaded", async () => {
  try { settings = await api("api/config"); } catch (e) { /* read-only page */ }
  route();
});
