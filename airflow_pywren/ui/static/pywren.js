/* The PyWren job view and jobs page: drawn in the browser from the plugin's JSON API (./api/...). */
"use strict";

const PyWren = (() => {
  const REFRESH_MS = 3000;
  const PAGE = 50;
  const SVG = "http://www.w3.org/2000/svg";
  const FINISHED = new Set(["success", "error"]);
  const TI_ACTIVE = new Set(["running", "deferred", "queued", "scheduled", "up_for_retry", "up_for_reschedule", "restarting"]);

  function el(tag, attrs = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs)) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function svg(tag, attrs = {}) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, value);
    return node;
  }

  async function getJSON(path, params) {
    const query = new URLSearchParams(params).toString();
    const response = await fetch(`api/${path}?${query}`, { credentials: "same-origin", headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    if (!response.ok) {
      const detail = body && body.detail ? (typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail)) : response.statusText;
      const error = new Error(response.status === 401 ? "Sign in to Airflow to see PyWren jobs (the API answered 401: not authenticated)."
        : response.status === 403 ? `You may not read this DAG's task instances (403: ${detail}).` : `${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return body;
  }

  const fmt = {
    int: (n) => (n === null || n === undefined ? "–" : Number(n).toLocaleString("en-US")),
    secs: (s) => (s === null || s === undefined ? "–" : s < 1 ? `${(s * 1000).toFixed(0)} ms` : s < 120 ? `${s.toFixed(2)} s` : `${(s / 60).toFixed(1)} min`),
    time: (t) => (t ? new Date(t * 1000).toISOString().replace("T", " ").replace(/(\.\d)\d*Z$/, "$1 UTC") : "–"),
    iso: (t) => (t ? t.replace("T", " ").replace(/\.\d+/, "").replace("+00:00", " UTC") : "–"),
  };

  function showState(doc, kind, message) {
    const box = doc.getElementById("pw-state");
    box.hidden = !message;
    box.className = `banner ${kind || ""}`;
    box.dataset.state = kind || "";
    box.textContent = message || "";
  }

  // ------------------------------------------------------------------ job view
  function jobView(doc) {
    const url = new URLSearchParams(window.location.search);
    const ti = { dag_id: url.get("dag_id") || "", run_id: url.get("run_id") || "", task_id: url.get("task_id") || "",
                 map_index: url.get("map_index") || "-1" };
    const page = { offset: 0, failedOnly: false, total: 0 };
    const expanded = new Set();
    let timer = null;

    doc.getElementById("pw-failed-only").addEventListener("change", (event) => {
      page.failedOnly = event.target.checked; page.offset = 0; refresh();
    });
    doc.getElementById("pw-prev").addEventListener("click", () => { page.offset = Math.max(0, page.offset - PAGE); refresh(); });
    doc.getElementById("pw-next").addEventListener("click", () => { page.offset += PAGE; refresh(); });
    doc.getElementById("pw-first").addEventListener("click", () => { page.offset = 0; refresh(); });
    doc.getElementById("pw-last").addEventListener("click", () => { page.offset = Math.max(0, Math.floor((page.total - 1) / PAGE) * PAGE); refresh(); });

    async function refresh() {
      clearTimeout(timer);
      let data;
      try {
        data = await getJSON("job", { ...ti, offset: page.offset, limit: PAGE, status: page.failedOnly ? "error" : "" });
      } catch (error) {
        showState(doc, "error", error.message);
        doc.getElementById("pw-job").hidden = true;
        if (error.status !== 401 && error.status !== 403) timer = setTimeout(refresh, REFRESH_MS * 3);
        return;
      }
      render(data);
      const running = data.summary ? !FINISHED.has(data.summary.status) : false;
      if (running || TI_ACTIVE.has(data.state)) timer = setTimeout(refresh, REFRESH_MS);
    }

    function render(data) {
      const mapped = Number(data.map_index) >= 0 ? ` [${data.map_index}]` : "";
      doc.getElementById("pw-ti").textContent =
        `${data.dag_id} / ${data.run_id} / ${data.task_id}${mapped} · task instance ${data.state || "no state"}, try ${data.try_number}`;
      const job = data.job;
      doc.getElementById("pw-title").textContent = job ? `PyWren ${job.kind || ""} job ${(job.job_ids || []).join("+")}` : "PyWren job";
      if (data.view_state !== "ok") {
        showState(doc, data.view_state, data.message);
        doc.getElementById("pw-job").hidden = true;
        return;
      }
      showState(doc, "", "");
      doc.getElementById("pw-job").hidden = false;
      renderSummary(data.summary);
      renderCalls(data.calls);
      if (data.timeline) renderTimeline(data.timeline);
    }

    function renderSummary(s) {
      const set = (id, value) => { doc.getElementById(id).textContent = fmt.int(value); };
      set("pw-done", s.done); set("pw-total", s.total); set("pw-running", s.running);
      set("pw-pending", s.pending); set("pw-failed", s.failed);
      doc.getElementById("pw-status").textContent = `job ${s.status}`;
      doc.getElementById("pw-refreshed").textContent = s.refreshed_at ? `read ${fmt.time(s.refreshed_at)}` : "";
      const bar = doc.getElementById("pw-progress");
      bar.replaceChildren(...[["success", s.success], ["error", s.failed], ["running", s.running], ["pending", s.pending]]
        .filter(([, n]) => n > 0)
        .map(([kind, n]) => el("div", { class: `bg-${kind}`, style: `width:${(100 * n) / Math.max(1, s.total)}%`, title: `${n} ${kind}` })));
      const facts = [
        ["kind", s.kind], ["jobs", s.jobs.map((j) => `${j.job_id} (${j.kind}, ${j.calls} calls)`).join(", ")],
        ["executor", s.executor_id], ["compute", s.compute_backend], ["storage", s.storage_backend],
        ["location", s.location], ["submitted", fmt.time(s.submitted_at)], ["first start", fmt.time(s.first_start)],
        ["duration", s.duration === null ? (FINISHED.has(s.status) ? "–" : "running") : fmt.secs(s.duration)],
      ];
      const failures = doc.getElementById("pw-failures");
      failures.hidden = !s.first_errors.length;
      failures.replaceChildren(...(s.first_errors.length ? [el("div", { class: "s-error", text: `${fmt.int(s.failed)} of ${fmt.int(s.total)} calls failed` })] : []),
        ...s.first_errors.map((c) => el("details", { class: "first-error" },
          el("summary", { text: `call ${c.index} (${c.job_id}/${c.call_id}): ${c.error.type}: ${c.error.message}` }),
          el("pre", { class: "traceback", text: c.error.traceback || "no traceback" }))));
      doc.getElementById("pw-facts").replaceChildren(...facts.map(([k, v]) =>
        el("div", { "data-fact": k }, el("span", { text: k }), el("span", { class: k === "location" || k === "executor" ? "mono" : "", text: v ?? "–" }))));
    }

    function renderCalls(calls) {
      page.total = calls.total;
      const body = doc.querySelector("#pw-calls tbody");
      const rows = [];
      for (const call of calls.calls) {
        const err = call.error;
        const worker = [call.worker_host, call.worker_pid].filter((x) => x !== null && x !== undefined).join(":");
        const key = `${call.job_id}/${call.call_id}`;
        const result = el("td");
        if (call.status === "success") {
          result.append(el("button", { type: "button", class: "pw-result", text: "result", onclick: (e) => preview(call, e.target.parentNode) }));
        }
        const row = el("tr", { class: `call-row${err ? " has-error" : ""}`, "data-status": call.status, "data-index": call.index },
          el("td", { text: call.index }),
          el("td", { class: "mono", text: key }),
          el("td", { class: `s-${call.status}`, text: call.status }),
          el("td", { text: fmt.time(call.start_time) }),
          el("td", { text: fmt.secs(call.duration) }),
          el("td", { class: "mono", text: [worker, call.activation_id].filter(Boolean).join(" · ") || "–" }),
          el("td", { class: "error-text", text: err ? `${err.type}: ${err.message}` : "" }),
          result);
        rows.push(row);
        if (err && err.traceback) {
          const trace = el("tr", { class: "traceback-row", hidden: expanded.has(key) ? null : "" },
            el("td", { colspan: 8 }, el("pre", { class: "traceback", text: err.traceback })));
          row.title = "click to show the remote traceback";
          row.addEventListener("click", () => {
            trace.hidden = !trace.hidden;
            if (trace.hidden) expanded.delete(key); else expanded.add(key);
          });
          rows.push(trace);
        }
      }
      if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: 8, class: "muted", text: page.failedOnly ? "no failed call" : "no call" })));
      body.replaceChildren(...rows);
      const last = Math.min(calls.offset + calls.calls.length, calls.total);
      doc.getElementById("pw-page").textContent = calls.total ? `calls ${fmt.int(calls.offset + 1)}–${fmt.int(last)} of ${fmt.int(calls.total)}` : "";
      doc.getElementById("pw-prev").disabled = doc.getElementById("pw-first").disabled = calls.offset <= 0;
      doc.getElementById("pw-next").disabled = doc.getElementById("pw-last").disabled = last >= calls.total;
    }

    async function preview(call, cell) {
      let text;
      try {
        const result = await getJSON("job/result", { ...ti, index: call.index });
        text = result.available ? JSON.stringify(result.value) : result.reason;
      } catch (error) {
        text = error.message;
      }
      cell.replaceChildren(el("div", { class: "preview mono", text }));
    }

    function renderTimeline(t) {
      const box = doc.getElementById("pw-timeline");
      const calls = t.calls;
      const caption = doc.getElementById("pw-timeline-caption");
      if (!calls.length) {
        caption.textContent = "no call has started yet";
        box.replaceChildren();
        return;
      }
      const now = t.origin ? t.now - t.origin : 0;
      const end = Math.max(t.end || 0, 1e-3);
      const width = Math.max(600, box.clientWidth - 12), left = 48, right = 12, barsTop = 4;
      const rowH = Math.min(12, 360 / calls.length);  // at most 360 px of bars, however many
      const barsH = rowH * calls.length;
      const chartTop = barsTop + barsH + 26, chartH = 70, height = chartTop + chartH + 22;
      const x = (s) => left + ((width - left - right) * Math.max(0, s)) / end;
      const root = svg("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "img", "aria-label": "calls timeline" });
      const bars = svg("g", { class: "pw-bars" });
      calls.forEach(([index, start, stop, status], row) => {
        const rect = svg("rect", { class: `pw-bar ${status}`, x: x(start), y: barsTop + row * rowH,
          width: Math.max(1, x(stop ?? now) - x(start)), height: rowH > 3 ? rowH - 1 : rowH, "data-index": index });
        const title = svg("title"); title.textContent = `call ${index}: ${status}, ${fmt.secs(start)} → ${stop === null ? "running" : fmt.secs(stop)}`;
        rect.append(title);
        bars.append(rect);
      });
      root.append(bars);
      // running calls over time, as steps computed by the server from every started call
      const peak = t.peak;
      const y = (n) => chartTop + chartH - (chartH * n) / Math.max(1, peak);
      const path = [];
      t.running.forEach(([time, running], i) => {
        if (i) path.push(`H${x(time).toFixed(1)}`);
        path.push(`${i ? "V" : `M${x(time).toFixed(1)},`}${y(running).toFixed(1)}`);
      });
      path.push(`H${x(end).toFixed(1)}`);
      root.append(svg("path", { class: "concurrency", d: path.join("") }));
      const label = (tx, ty, text, anchor = "start") => { const node = svg("text", { x: tx, y: ty, "text-anchor": anchor }); node.textContent = text; root.append(node); };
      label(4, barsTop + 10, "calls");
      label(4, chartTop + 10, "running");
      label(left - 4, chartTop + 22, String(peak), "end");
      label(left - 4, chartTop + chartH, "0", "end");
      for (let i = 0; i <= 4; i += 1) label(x((end * i) / 4), height - 6, fmt.secs((end * i) / 4), i === 0 ? "start" : i === 4 ? "end" : "middle");
      box.replaceChildren(root);
      const queued = t.queued === null || t.queued === undefined ? "" : `; the first call started ${fmt.secs(t.queued)} after submission`;
      const sample = doc.getElementById("pw-timeline-sample");
      sample.hidden = !t.sampled;
      sample.textContent = t.sampled ? `showing ${fmt.int(calls.length)} of ${fmt.int(t.started)} calls (an even sample; the running line counts every call)` : "";
      caption.textContent = `${fmt.int(t.started)} of ${fmt.int(t.total)} calls started; at most ${fmt.int(peak)} running at once; time since the first start${queued}`;
    }

    refresh();
  }

  // ------------------------------------------------------------------ jobs page
  function jobsPage(doc) {
    async function refresh() {
      let data;
      try {
        data = await getJSON("jobs", { limit: 100 });
      } catch (error) {
        showState(doc, "error", error.message);
        return;
      }
      showState(doc, "", data.jobs.length ? "" : "No PyWren job yet: run a DAG with a PyWren task.");
      const rows = data.jobs.map((row) => {
        const job = row.job;
        const query = new URLSearchParams({ dag_id: row.dag_id, run_id: row.run_id, task_id: row.task_id, map_index: row.map_index });
        const mapped = row.map_index >= 0 ? ` [${row.map_index}]` : "";
        return el("tr", { class: "job-row", "data-dag": row.dag_id, "data-task": row.task_id },
          el("td", {}, el("a", { href: `job?${query}`, class: "job-link", text: `${row.dag_id}.${row.task_id}${mapped}` })),
          el("td", { class: "mono", text: row.run_id }),
          el("td", { class: `s-${row.state === "success" ? "success" : row.state === "failed" ? "error" : "running"}`, text: row.state || "–" }),
          el("td", { class: "mono", text: `${job.kind || ""} ${(job.job_ids || []).join("+")}` }),
          el("td", { text: fmt.int(job.total) }),
          el("td", { class: job.failed ? "s-error" : "", text: FINISHED.has(job.status) ? fmt.int(job.failed) : "–" }),
          el("td", { text: job.storage_backend || "–" }),
          el("td", { text: fmt.iso(row.start_date) }),
          el("td", { text: row.duration === null || row.duration === undefined ? "–" : fmt.secs(row.duration) }));
      });
      doc.querySelector("#pw-jobs tbody").replaceChildren(...rows);
      setTimeout(refresh, REFRESH_MS * 2);
    }
    refresh();
  }

  return { jobView, jobsPage };
})();
