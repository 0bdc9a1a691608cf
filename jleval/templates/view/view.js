// jleval view: pages through the samples of one or two runs. Data comes from data/meta.js and data/cNNNNN.js
// (plain scripts, so the page works opened from disk); a chunk is loaded only when a page or a search needs it.
// Every text from the data is put in the page with textContent, never as HTML.
(function () {
  "use strict";
  var MAX_CACHED = 40;
  var FILTER_LABELS = {
    all: "all samples", wrong_any: "wrong answers", wrong_0: "wrong in A", wrong_1: "wrong in B",
    error_any: "errors", differ: "A and B disagree (one right, one wrong)"
  };
  var meta = null;
  var state = { task: "", filter: "all", q: "", page: 0, size: 50, prompts: false };
  var cache = new Map();     // chunk index -> rows
  var waiting = new Map();   // chunk index -> [callbacks]
  var searchCounts = new Map();  // chunk index -> matches of the current search (filled by the scan)
  var searchId = 0, renderId = 0;

  function $(id) { return document.getElementById(id); }
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  window.jlevalChunk = function (k, rows) {
    cache.set(k, rows);
    if (cache.size > MAX_CACHED) cache.delete(cache.keys().next().value);
    (waiting.get(k) || []).forEach(function (f) { f(rows); });
    waiting.delete(k);
  };

  function loadChunk(k) {
    if (cache.has(k)) return Promise.resolve(cache.get(k));
    return new Promise(function (resolve, reject) {
      if (!waiting.has(k)) {
        waiting.set(k, []);
        var s = document.createElement("script");
        s.src = "data/c" + String(k).padStart(5, "0") + ".js";
        s.charset = "utf-8";
        s.onload = function () { s.remove(); };
        s.onerror = function () { waiting.delete(k); reject(new Error("cannot load " + s.src)); };
        document.head.appendChild(s);
      }
      waiting.get(k).push(resolve);
    });
  }

  // the same rules as jleval.view.flags
  function passesFilter(s) {
    var oks = s.r.map(function (x) { return x ? x.ok : null; });
    switch (state.filter) {
      case "wrong_any": return oks.some(function (o) { return o === false; });
      case "wrong_0": return oks[0] === false;
      case "wrong_1": return oks.length > 1 && oks[1] === false;
      case "error_any": return s.r.some(function (x) { return x && x.err; });
      case "differ": return oks.length > 1 && oks[0] !== null && oks[1] !== null && oks[0] !== oks[1];
      default: return true;
    }
  }
  function passesSearch(s) {
    if (!state.q) return true;
    var q = state.q.toLowerCase();
    var hay = [s.in, s.g];
    s.r.forEach(function (x) { if (x) hay.push(x.gen, x.pred || "", x.err || ""); });
    return hay.some(function (t) { return String(t).toLowerCase().indexOf(q) >= 0; });
  }
  function passes(s) { return passesFilter(s) && passesSearch(s); }

  function candidates() {
    var out = [];
    meta.chunks.forEach(function (c, k) { if (!state.task || c.task === state.task) out.push(k); });
    return out;
  }
  function known(k) {  // matches in chunk k, or undefined while a search has not scanned it
    if (!state.q) return meta.chunks[k].counts[state.filter];
    return searchCounts.get(k);
  }

  async function scan(id) {  // a search: count matches chunk by chunk, updating the summary as it goes
    var cands = candidates();
    for (var i = 0; i < cands.length; i++) {
      if (id !== searchId) return;
      var k = cands[i];
      if (searchCounts.has(k)) continue;
      var c = meta.chunks[k].counts[state.filter];
      if (c === 0) { searchCounts.set(k, 0); continue; }
      var rows = await loadChunk(k);
      if (id !== searchId) return;
      searchCounts.set(k, rows.filter(passes).length);
      if (i % 4 === 3 || i === cands.length - 1) summary();
    }
  }

  function totals() {
    var sum = 0, unknown = 0, cands = candidates();
    cands.forEach(function (k) { var c = known(k); if (c === undefined) unknown++; else sum += c; });
    return { sum: sum, unknown: unknown, chunks: cands.length };
  }
  function summary() {
    var t = totals();
    var pages = Math.max(1, Math.ceil(t.sum / state.size));
    var all = candidates().reduce(function (a, k) { return a + meta.chunks[k].n; }, 0);
    var what = (state.q || state.filter !== "all") ? (" of " + all + " samples match") : " samples";
    var text = t.unknown ? ("≥ " + t.sum + " matches so far (searching: " + (t.chunks - t.unknown) + " of " +
      t.chunks + " files)") : (t.sum + what + " · page " + (state.page + 1) + " of " + pages);
    $("summary").textContent = text;
    $("prev").disabled = state.page === 0;
    $("next").disabled = !t.unknown && (state.page + 1) >= pages;
  }

  async function pageRows() {
    var skip = state.page * state.size, need = state.size, out = [];
    var cands = candidates();
    for (var i = 0; i < cands.length && need > 0; i++) {
      var k = cands[i], c = known(k);
      if (c === 0 || (c !== undefined && skip >= c)) { skip -= (c || 0); continue; }
      var rows = await loadChunk(k);
      var matched = rows.filter(passes);
      if (state.q) searchCounts.set(k, matched.length);
      if (skip >= matched.length) { skip -= matched.length; continue; }
      matched.slice(skip, skip + need).forEach(function (r) { out.push([meta.chunks[k].task, r]); });
      need -= Math.min(need, matched.length - skip);
      skip = 0;
    }
    return out;
  }

  async function render() {
    var id = ++renderId;
    writeHash();
    taskNote();
    summary();
    var rows;
    try { rows = await pageRows(); } catch (e) { $("list").replaceChildren(el("div", "empty", String(e))); return; }
    if (id !== renderId) return;
    var list = $("list");
    list.replaceChildren();
    if (!rows.length) list.appendChild(el("div", "empty", "no sample matches"));
    rows.forEach(function (tr) { list.appendChild(card(tr[0], tr[1])); });
    summary();
  }

  function taskMeta(name) { return meta.tasks.find(function (t) { return t.name === name; }); }

  function badge(side) {
    if (!side) return el("span", "badge na", "no output");
    if (side.err) return el("span", "badge err", "error");
    if (side.ok === true) return el("span", "badge ok", "right");
    if (side.ok === false) return el("span", "badge bad", "wrong");
    return el("span", "badge na", "no per-sample score");
  }

  function block(label, text, cls) {
    var d = el("div");
    d.appendChild(el("div", "label", label));
    d.appendChild(el("pre", cls, text));
    return d;
  }

  function promptBlock(task, k, side, input) {
    var tm = taskMeta(task).runs[k];
    if (side.p === undefined) return el("div", "meta", tm.note || "prompt not shown");
    var full = side.p === 1 ? tm.head + input + tm.tail : side.p;
    var d = el("details");
    d.appendChild(el("summary", null, "prompt (" + full.length + " characters)"));
    var pre = el("pre", null, state.prompts ? full : undefined);
    d.open = state.prompts;
    d.addEventListener("toggle", function () { if (d.open && !pre.textContent) pre.textContent = full; });
    d.appendChild(pre);
    return d;
  }

  function metricsLine(side) {
    var m = el("div", "metrics");
    Object.keys(side.s || {}).forEach(function (name) {
      var v = side.s[name];
      var s = el("span");
      s.appendChild(el("b", null, name));
      s.appendChild(document.createTextNode(" " + (v === null ? "—" : (Math.round(v * 10000) / 10000))));
      m.appendChild(s);
    });
    if (side.ool) m.appendChild(el("span", null, "out of label"));
    return m;
  }

  function sideView(task, k, side, input) {
    var d = el("div", "side");
    var run = meta.runs[k];
    var head = el("div", "runlabel", (meta.runs.length > 1 ? ("ABC"[k] + ": ") : "") + run.name);
    d.appendChild(head);
    if (!side) { d.appendChild(el("div", "meta", "this run has no output for this sample")); return d; }
    if (side.err) d.appendChild(block("error", side.err, "error"));
    if (side.gen || !side.err) d.appendChild(block("generation", side.gen, "gen"));
    if (side.pred !== undefined) {
      var what = side.ext === false ? "extracted answer (none found: scored as empty)" : "answer as scored";
      d.appendChild(block(what, side.pred));
    }
    d.appendChild(metricsLine(side));
    var info = [];
    if (side.fr) info.push("finish: " + side.fr);
    if (side.pt !== undefined) info.push(side.pt + " prompt tokens");
    if (side.ct !== undefined) info.push(side.ct + " generated tokens");
    if (info.length) d.appendChild(el("div", "meta", info.join(" · ")));
    d.appendChild(promptBlock(task, k, side, input));
    return d;
  }

  function card(task, s) {
    var c = el("article", "card");
    var head = el("div", "head");
    head.appendChild(el("span", "id", task + " #" + s.i));
    s.r.forEach(function (side, k) {
      if (s.r.length > 1) head.appendChild(el("span", "meta", "ABC"[k]));
      head.appendChild(badge(side));
    });
    if (s.xd) head.appendChild(el("span", "badge xd", "inputs differ between the runs"));
    c.appendChild(head);
    var io = el("div", "io");
    io.appendChild(block("input", s.in));
    io.appendChild(block("gold", s.g));
    c.appendChild(io);
    var sides = el("div", "sides" + (s.r.length > 1 ? " two" : ""));
    s.r.forEach(function (side, k) { sides.appendChild(sideView(task, k, side, s.in)); });
    c.appendChild(sides);
    return c;
  }

  function taskNote() {
    var n = $("tasknote");
    n.replaceChildren();
    if (!state.task) {
      if (meta.warnings.length) n.appendChild(el("span", "warn", meta.warnings.join(" · ")));
      return;
    }
    var t = taskMeta(state.task);
    t.runs.forEach(function (r, k) {
      var parts = Object.keys(r.metrics).map(function (m) {
        var v = r.metrics[m];
        return m + (m === r.main ? " ★" : "") + " " + (v === null || v === undefined ? "—" : v.toFixed(4));
      });
      var line = el("div", null, (meta.runs.length > 1 ? "ABC"[k] + ": " : "") + meta.runs[k].name + ": " +
        (parts.join(", ") || "no scores"));
      n.appendChild(line);
      if (r.note) n.appendChild(el("div", "warn", r.note));
    });
  }

  function runCards() {
    var box = $("runs");
    meta.runs.forEach(function (r, k) {
      var d = el("div", "run");
      d.appendChild(el("b", null, (meta.runs.length > 1 ? "ABC"[k] + ": " : "") + r.name));
      var bits = [r.model, r.backend, r.split, r.shots + "-shot", r.prompt_style, r.profile,
        "AVG " + (r.avg === null || r.avg === undefined ? "—" : r.avg.toFixed(4))];
      d.appendChild(el("div", null, bits.filter(function (b) { return b !== null && b !== undefined; }).join(" · ")));
      d.title = r.path + "\ntemplate " + r.template + (r.chat_template ? " + chat template" : "") +
        "\nmax_num_samples " + r.max_num_samples;
      box.appendChild(d);
    });
  }

  function controls() {
    var task = $("task");
    meta.tasks.forEach(function (t) { task.appendChild(new Option(t.name + " (" + t.n + ")", t.name)); });
    var filter = $("filter");
    meta.filters.forEach(function (f) {
      if (meta.runs.length < 2 && (f === "wrong_0" || f === "wrong_1" || f === "differ")) return;
      filter.appendChild(new Option(FILTER_LABELS[f], f));
    });
    readHash();
    task.value = state.task; filter.value = state.filter; $("q").value = state.q; $("size").value = String(state.size);
    task.onchange = function () { state.task = task.value; resetSearch(); };
    filter.onchange = function () { state.filter = filter.value; resetSearch(); };
    $("size").onchange = function () { state.size = +$("size").value; state.page = 0; render(); };
    var timer = null;
    $("q").oninput = function () {
      clearTimeout(timer);
      timer = setTimeout(function () { state.q = $("q").value.trim(); resetSearch(); }, 250);
    };
    $("prev").onclick = function () { if (state.page > 0) { state.page--; render(); window.scrollTo(0, 0); } };
    $("next").onclick = function () { state.page++; render(); window.scrollTo(0, 0); };
  }

  function resetSearch() {
    state.page = 0;
    searchCounts = new Map();
    var id = ++searchId;
    render();
    if (state.q) scan(id);
  }

  function readHash() {
    var p = new URLSearchParams(location.hash.slice(1));
    if (p.has("task") && taskMeta(p.get("task"))) state.task = p.get("task");
    if (p.has("filter") && meta.filters.indexOf(p.get("filter")) >= 0) state.filter = p.get("filter");
    if (p.has("q")) state.q = p.get("q");
    if (p.has("size") && [20, 50, 100, 200].indexOf(+p.get("size")) >= 0) state.size = +p.get("size");
    state.prompts = p.get("prompts") === "open";
    if (p.has("page")) state.page = Math.max(0, (+p.get("page") || 1) - 1);
  }
  function writeHash() {
    var p = new URLSearchParams();
    if (state.task) p.set("task", state.task);
    if (state.filter !== "all") p.set("filter", state.filter);
    if (state.q) p.set("q", state.q);
    if (state.size !== 50) p.set("size", state.size);
    if (state.page) p.set("page", state.page + 1);
    if (state.prompts) p.set("prompts", "open");
    history.replaceState(null, "", "#" + p.toString());
  }

  window.jlevalMeta = function (m) {
    meta = m;
    runCards();
    controls();
    var page = state.page;
    resetSearch();
    if (page) { state.page = page; render(); }
  };
})();
