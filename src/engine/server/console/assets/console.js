// Tandem console: the buttons (through the JSON API), live updates (server-sent events) and
// the rules editor's marks. Plain JavaScript, no dependencies; embedded in the binary.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const meta = (name) => { const m = document.querySelector(`meta[name="${name}"]`); return m ? m.content : ""; };
  const csrf = meta("csrf-token");
  let reloading = false; // the page is being drawn again

  async function api(method, url, body) {
    const opts = { method, headers: { "X-CSRF-Token": csrf, "Accept": "application/json" }, credentials: "same-origin" };
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    const res = await fetch(url, opts);
    let data = null;
    try { data = await res.json(); } catch (_) { data = null; }
    if (!res.ok) {
      const err = new Error((data && data.error) || `the server answered ${res.status}`);
      err.details = (data && data.details) || [];
      err.status = res.status;
      throw err;
    }
    return data;
  }

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") e.className = v; else e.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) { if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c)); }
    return e;
  }

  function say(target, kind, text, details) {
    if (!target) return;
    target.replaceChildren(el("div", { class: `banner ${kind}`, role: kind === "error" ? "alert" : "status" }, text,
      ...(details || []).map((d) => el("div", { class: "small" }, d))));
  }

  const kindWords = { pull: "Pull (HubSpot → Accelo)", push: "Push (Accelo → HubSpot)", push_company: "Push of a company", push_contact: "Push of a contact", apply: "Saved plan", record: "Automatic sync" };
  function duration(s) {
    if (s < 60) return `${Math.round(s)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }

  function jobLine(j) {
    const pct = j.total ? Math.min(100, Math.floor((Math.min(j.done, j.total) * 100) / j.total)) : 0;
    const head = el("div", { class: "jobhead" }, el("strong", {}, kindWords[j.kind] || j.kind), ` · job ${j.id}`,
      j.subject ? " · " : null, j.subject ? el("code", {}, j.subject) : null, " · ", el("span", { class: "state" }, j.state));
    let text = `${j.done} / ${j.total === null || j.total === undefined ? "…" : j.total} (${pct} %)`;
    if (j.rate) text += ` · ${j.rate.toFixed(1)} records/s`;
    if (j.seconds_left !== null && j.seconds_left !== undefined) text += ` · ${duration(j.seconds_left)} left`;
    const bar = el("progress", { class: "progress", max: "100", value: String(pct), "aria-label": `${kindWords[j.kind] || j.kind} progress` }, `${pct} %`);
    return el("div", { class: "job", "data-job-id": String(j.id), "data-state": j.state }, head, bar, el("p", { class: "progresstext" }, text));
  }

  // ----- live updates -------------------------------------------------------------------
  const jobsBox = $("#jobs");
  const logTable = $("#log");
  let seenActive = new Set($$("#jobs .job").map((d) => d.dataset.jobId));
  // One live stream per visible page: browsers allow only a few connections per server, so a
  // hidden tab or a page being left gives its stream up (and a tab shown again reopens it).
  let es = null;
  function onJobs(ev) {
    if (!jobsBox) return;
    const jobs = JSON.parse(ev.data).filter((j) => j.kind !== "record");
    const now = new Set(jobs.map((j) => String(j.id)));
    jobsBox.replaceChildren(...jobs.map(jobLine));
    // A job we watched has ended: draw the page again for its counts and the last runs.
    for (const id of seenActive) {
      if (!now.has(id) && !reloading) { reloading = true; closeLive(); window.location.reload(); return; }
    }
    seenActive = now;
  }
  async function onLog(ev) {
    if (!logTable) return;
    const after = logTable.dataset.after;
    const data = JSON.parse(ev.data);
    const newest = data.entries.length ? data.entries[data.entries.length - 1].id : null;
    const p = new URLSearchParams(logTable.dataset.filter || "");
    p.set("after", after);
    const res = await fetch(`/log/rows?${p.toString()}`, { credentials: "same-origin" });
    if (!res.ok) return;
    const html = await res.text();
    const tpl = document.createElement("template");
    tpl.innerHTML = html;
    $("tbody", logTable).prepend(...tpl.content.children);
    if (newest !== null) logTable.dataset.after = String(newest);
    const empty = $("#empty"); if (empty) empty.remove();
  }
  function openLive() {
    if (es || document.hidden) return;
    if (!(jobsBox || (logTable && logTable.dataset.after))) return;
    const params = new URLSearchParams(logTable && logTable.dataset.filter ? logTable.dataset.filter : "");
    if (logTable && logTable.dataset.after) params.set("after", logTable.dataset.after);
    es = new EventSource(`/api/v1/events?${params.toString()}`);
    es.addEventListener("jobs", onJobs);
    es.addEventListener("log", onLog);
  }
  function closeLive() { if (es) { es.close(); es = null; } }
  document.addEventListener("visibilitychange", () => { if (document.hidden) closeLive(); else openLive(); });
  window.addEventListener("pagehide", closeLive);
  window.addEventListener("pageshow", openLive);
  openLive();

  // Filter forms send only the fields that are filled in.
  for (const f of $$("form.filters")) {
    f.addEventListener("submit", () => {
      for (const i of $$("input, select", f)) if (i.name && i.value === "") i.disabled = true;
    });
  }

  // A job queued from this page: when it has ended (even before the live stream saw it run),
  // the page draws itself again with its counts.
  function watchJob(id) {
    seenActive.add(String(id));
    const timer = setInterval(async () => {
      try {
        const res = await fetch(`/api/v1/jobs/${id}`, { credentials: "same-origin" });
        if (!res.ok) return;
        const j = await res.json();
        if (j.state !== "queued" && j.state !== "running" && !reloading) {
          reloading = true;
          clearInterval(timer);
          closeLive();
          window.location.reload();
        }
      } catch (_) { /* the next tick tries again */ }
    }, 1000);
  }

  // ----- buttons --------------------------------------------------------------------------
  async function runJob(kind, button) {
    button.disabled = true;
    try {
      const j = await api("POST", "/api/v1/jobs", { kind });
      if (jobsBox && !$(`[data-job-id="${j.id}"]`, jobsBox)) jobsBox.append(jobLine(j));
      watchJob(j.id);
    } catch (e) {
      say(jobsBox, "error", e.message, e.details);
    } finally {
      button.disabled = false;
    }
  }
  const pull = $("#run-pull"); if (pull) pull.addEventListener("click", () => runJob("pull", pull));
  const push = $("#run-push"); if (push) push.addEventListener("click", () => runJob("push", push));

  for (const b of $$("[data-run-anyway]")) {
    b.addEventListener("click", async () => {
      if (!window.confirm(b.dataset.confirm)) return;
      b.disabled = true;
      try {
        const j = await api("POST", `/api/v1/jobs/${b.dataset.runAnyway}/run-anyway`);
        if (jobsBox) jobsBox.append(jobLine(j));
        watchJob(j.id);
      } catch (e) { say(b.parentElement, "error", e.message, e.details); b.disabled = false; }
    });
  }

  const record = $("#record");
  if (record) {
    for (const b of $$(".record-action", record)) {
      b.addEventListener("click", async () => {
        const out = $("#record-result");
        b.disabled = true;
        try {
          const url = `/api/v1/records/${record.dataset.system}/${record.dataset.object}/${record.dataset.id}`;
          const j = await api("POST", url, { action: b.dataset.action });
          say(out, "ok", `Queued: ${b.textContent.trim().toLowerCase()}, job ${j.id}. `);
          out.firstChild.append(el("a", { href: `/log?job=${j.id}` }, "Follow it in the Sync Log"));
        } catch (e) { say(out, "error", e.message, e.details); }
        finally { b.disabled = false; }
      });
    }
  }

  const doctorButton = $("#run-doctor");
  if (doctorButton) {
    doctorButton.addEventListener("click", async () => {
      const out = $("#doctor");
      doctorButton.disabled = true;
      out.replaceChildren(el("p", { class: "small" }, "Checking…"));
      try {
        const d = await api("GET", "/api/v1/doctor");
        const rows = d.findings.map((f) => el("li", { class: `finding ${f.status}` },
          el("span", { class: `pill ${f.status === "ok" ? "succeeded" : "failed"}` }, f.status), " ",
          el("strong", {}, f.check), ": ", f.message, f.fix ? el("span", { class: "help" }, ` — ${f.fix}`) : null));
        out.replaceChildren(el("p", {}, d.problems === 0 ? "Everything checks out." : `${d.problems} to look at:`), el("ul", { class: "findings" }, ...rows));
      } catch (e) { say(out, "error", e.message, e.details); }
      finally { doctorButton.disabled = false; }
    });
  }

  // ----- plan preview ---------------------------------------------------------------------
  const planFilter = $("#plan-filter");
  if (planFilter) {
    planFilter.addEventListener("input", () => {
      const q = planFilter.value.trim().toLowerCase();
      for (const tr of $$("#plan-actions tbody tr")) {
        tr.hidden = q !== "" && !tr.textContent.toLowerCase().includes(q) && tr.dataset.op !== q;
      }
    });
  }
  const apply = $("#apply-plan");
  if (apply) {
    apply.addEventListener("click", async () => {
      const out = $("#apply-result");
      if (!window.confirm("Apply exactly this plan now?")) return;
      apply.disabled = true;
      try {
        const saved = JSON.parse($("#saved-plan").value);
        const j = await api("POST", "/api/v1/plans/apply", { saved });
        say(out, "ok", `Applying the plan: job ${j.id}. `);
        out.firstChild.append(el("a", { href: `/log?job=${j.id}` }, "Follow it in the Sync Log"));
      } catch (e) { say(out, "error", e.message, e.details); apply.disabled = false; }
    });
  }

  // ----- rules editor ---------------------------------------------------------------------
  const editor = $("#editor");
  if (editor) {
    const file = editor.dataset.file;
    const source = $("#source");
    const gutter = $("#gutter");
    const list = $("#diagnostics");
    const state = $("#check-state");
    const out = $("#rules-result");
    const save = $("#save-rules");
    let marks = new Map();
    let lastOk = true;

    function drawGutter() {
      const n = source.value.split("\n").length;
      const rows = [];
      for (let i = 1; i <= n; i++) {
        const m = marks.get(i);
        const d = el("div", { class: m ? m.severity : null, title: m ? `${m.code} ${m.message}` : null, "data-line": String(i) }, String(i));
        rows.push(d);
      }
      gutter.replaceChildren(...rows);
      gutter.scrollTop = source.scrollTop;
    }
    function goTo(line, column) {
      const lines = source.value.split("\n");
      let pos = 0;
      for (let i = 0; i < line - 1 && i < lines.length; i++) pos += lines[i].length + 1;
      pos += Math.max(0, column - 1);
      source.focus();
      source.setSelectionRange(pos, pos);
      source.scrollTop = Math.max(0, (line - 5) * 19);
    }
    function show(check) {
      marks = new Map();
      const mine = check.diagnostics.filter((d) => d.file === file);
      const others = check.diagnostics.filter((d) => d.file !== file);
      for (const d of mine) {
        const prev = marks.get(d.line);
        if (!prev || (prev.severity !== "error" && d.severity === "error")) marks.set(d.line, d);
      }
      list.replaceChildren(...mine.concat(others).map((d) => {
        const li = el("li", { class: d.severity, tabindex: "0", "data-line": String(d.line), "data-code": d.code },
          el("span", { class: "where" }, `${d.file}:${d.line}:${d.column}`), " ", el("code", {}, d.code), " ", d.message,
          d.help ? el("span", { class: "help" }, `help: ${d.help}`) : null);
        if (d.file === file) {
          const jump = () => goTo(d.line, d.column);
          li.addEventListener("click", jump);
          li.addEventListener("keydown", (e) => { if (e.key === "Enter") jump(); });
        }
        return li;
      }));
      lastOk = check.ok;
      state.textContent = check.diagnostics.length === 0 ? "No problems." : check.summary;
      if (save && meta("tandem-role") === "operator") save.disabled = !check.ok;
      drawGutter();
    }
    let timer = null;
    let seq = 0;
    async function check() {
      const mine = ++seq;
      try {
        const c = await api("POST", "/api/v1/rules/check", { file, text: source.value });
        if (mine === seq) show(c);
      } catch (e) { say(out, "error", e.message, e.details); }
    }
    source.addEventListener("input", () => { drawGutter(); clearTimeout(timer); timer = setTimeout(check, 250); });
    source.addEventListener("scroll", () => { gutter.scrollTop = source.scrollTop; });
    source.addEventListener("keydown", (e) => {
      if (e.key === "Tab" && !e.shiftKey && !e.ctrlKey && !e.altKey && !e.metaKey && e.target === source && source.dataset.tabs === "on") {
        e.preventDefault();
        source.setRangeText("  ", source.selectionStart, source.selectionEnd, "end");
      }
    });
    check();

    $("#run-tests").addEventListener("click", async () => {
      try {
        const t = await api("POST", "/api/v1/rules/test", { file, text: source.value });
        if (!t.check.ok) { say(out, "error", `The rules have problems (${t.check.summary}): fix them to run the tests.`); return; }
        const rows = t.cases.map((c) => el("tr", {}, el("td", {}, c.file), el("td", {}, c.name),
          el("td", {}, el("span", { class: `pill ${c.passed ? "succeeded" : "failed"}` }, c.passed ? "passed" : "failed")),
          el("td", {}, c.diff ? el("pre", {}, c.diff) : "")));
        out.replaceChildren(el("h2", {}, `Tests: ${t.passed} passed, ${t.failed} failed`),
          el("table", { id: "test-results" }, el("tbody", {}, ...rows)));
      } catch (e) { say(out, "error", e.message, e.details); }
    });

    $("#preview-impact").addEventListener("click", async () => {
      out.replaceChildren(el("p", { class: "small" }, "Reading both systems and planning twice…"));
      try {
        const r = await api("POST", "/api/v1/rules/preview", { file, text: source.value, direction: "pull" });
        if (!r.check.ok) { say(out, "error", `The rules have problems (${r.check.summary}): fix them to preview.`); return; }
        const rows = r.rows.map((x) => el("tr", { "data-change": x.change }, el("td", {}, x.object), el("td", {}, x.record),
          el("td", {}, el("span", { class: "pill" }, x.change)), el("td", { class: "running" }, x.running || "—"), el("td", { class: "edited" }, x.edited || "—")));
        out.replaceChildren(
          el("h2", {}, "Impact on a pull"),
          el("p", {}, el("strong", {}, "Running rules: "), r.running), el("p", {}, el("strong", {}, "With your edit: "), r.edited),
          r.rows.length === 0 ? el("p", { id: "impact-none" }, "The edit changes no action.")
            : el("table", { class: "impact", id: "impact" }, el("thead", {}, el("tr", {}, el("th", {}, "Object"), el("th", {}, "Record"), el("th", {}, "Change"), el("th", {}, "Running rules"), el("th", {}, "Your edit"))), el("tbody", {}, ...rows)));
      } catch (e) { say(out, "error", e.message, e.details); }
    });

    if (save) {
      save.addEventListener("click", async () => {
        if (!lastOk) { say(out, "error", "Fix the problems first: a file that does not check is not saved."); return; }
        save.disabled = true;
        try {
          const r = await api("PUT", `/api/v1/rules/files/${encodeURIComponent(file)}`, { text: source.value });
          say(out, "ok", `Saved as version ${r.version}. The running rules reload from it now; the Sync Log says when they did.`);
        } catch (e) { say(out, "error", e.message, e.details); }
        finally { save.disabled = !lastOk; }
      });
    }
    for (const b of $$("[data-revert]")) {
      b.addEventListener("click", async () => {
        if (!window.confirm(b.dataset.confirm)) return;
        try {
          const r = await api("POST", `/api/v1/rules/files/${encodeURIComponent(file)}/versions/${b.dataset.revert}/revert`);
          say(out, "ok", `Restored as version ${r.version}.`);
          window.location.reload();
        } catch (e) { say(out, "error", e.message, e.details); }
      });
    }
  }
})();
