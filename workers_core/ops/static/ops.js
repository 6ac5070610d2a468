// The operations page: queues, workers and recent jobs from the HTTP API, kept live by the
// lifecycle event stream (GET /v1/events). No framework, no build step.
//
// Safety: every value from the API is rendered with textContent / text nodes, never as
// HTML (job errors and payloads are user data). The CSP of /ops forbids inline script.
//
// The event stream is read with fetch() streaming, not EventSource: EventSource cannot send
// an Authorization header, and a token in the URL would end up in proxy and access logs.
"use strict";

(() => {
  const TOKEN_KEY = "workers-core.ops.token";
  const MAX_JOB_ROWS = 100;
  const QUEUE_REFRESH_MS = 5000;
  const WORKER_REFRESH_MS = 10000;
  const RETRYABLE = new Set(["failed", "dead"]);
  const CANCELLABLE = new Set(["queued", "scheduled", "retrying", "running"]);
  const DETAILED = new Set(["failed", "dead", "retrying"]); // fetch the job for its error

  const $ = (id) => document.getElementById(id);

  /** An element with properties set and children appended as text (never parsed). */
  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else node[key] = value;
    }
    node.append(...children.map((c) => (c instanceof Node ? c : String(c ?? ""))));
    return node;
  }

  const statusBadge = (status) => el("span", { class: `status status-${status}` }, status);

  // -- HTTP ------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, problem) {
      let text = `${status} ${problem?.title ?? "error"}`;
      if (problem?.detail) text += `: ${problem.detail}`;
      super(text);
      this.status = status;
      this.problem = problem;
    }
  }

  function authHeaders() {
    const token = sessionStorage.getItem(TOKEN_KEY);
    return token ? { Authorization: `Bearer ${token}` } : {};
  }

  async function api(method, path, body) {
    const init = { method, headers: { Accept: "application/json", ...authHeaders() } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = { detail: text.slice(0, 200) };
    }
    if (!response.ok) throw new ApiError(response.status, data);
    return data;
  }

  const enc = encodeURIComponent;

  function say(text, isError = false) {
    const box = $("message");
    box.textContent = text;
    box.classList.toggle("error", isError);
  }

  async function act(label, method, path, body) {
    try {
      const answer = await api(method, path, body);
      say(`${label}: done`);
      return answer;
    } catch (err) {
      say(`${label}: ${err.message}`, true);
      return null;
    }
  }

  // -- queues ----------------------------------------------------------------------------

  const queueRows = new Map(); // queue -> {row, cells, drain, input}

  function queueRow(name) {
    const cells = {};
    for (const key of ["length", "lag", "pending", "oldest", "delayed", "dlq", "replicas"]) {
      cells[key] = el("td", { class: "num" });
    }
    cells.state = el("td");
    cells.bounds = el("span", { class: "muted" });
    const input = el("input", { type: "number", min: 1, step: 1, placeholder: "auto" });
    input.setAttribute("aria-label", `replicas for ${name}`);
    const scale = el("button", { type: "button" }, "Scale");
    const auto = el("button", { type: "button", title: "back to the backlog rule" }, "Auto");
    cells.scale = el("td", {}, input, " ", scale, " ", auto, " ", cells.bounds);
    const drain = el("button", { type: "button", class: "danger" }, "Drain");
    const row = el("tr", { dataset: { queue: name } }, el("td", {}, name), cells.length,
      cells.lag, cells.pending, cells.oldest, cells.delayed, cells.dlq, cells.replicas,
      cells.state, cells.scale, el("td", { class: "actions" }, drain));
    const entry = { row, cells, drain, input, scale, auto };

    drain.addEventListener("click", async () => {
      const verb = entry.draining ? "resume" : "drain";
      const stats = await act(`${verb} ${name}`, "POST", `/v1/queues/${enc(name)}:${verb}`);
      if (stats) updateQueue(stats);
    });
    const setTarget = async (replicas) => {
      const stats = await act(`scale ${name}`, "POST", `/v1/queues/${enc(name)}:scale`,
        { replicas });
      if (stats) updateQueue(stats, true);
    };
    scale.addEventListener("click", () => {
      const wanted = Number.parseInt(input.value, 10);
      if (Number.isNaN(wanted)) say(`scale ${name}: enter a number of replicas`, true);
      else setTarget(wanted);
    });
    auto.addEventListener("click", () => setTarget(null));
    return entry;
  }

  function updateQueue(q, force = false) {
    let entry = queueRows.get(q.queue);
    if (!entry) {
      entry = queueRow(q.queue);
      queueRows.set(q.queue, entry);
    }
    const c = entry.cells;
    c.length.textContent = q.length;
    c.lag.textContent = q.lag;
    c.pending.textContent = q.pending;
    c.oldest.textContent = q.oldest_waiting_s ? `${q.oldest_waiting_s.toFixed(1)} s` : "–";
    c.delayed.textContent = q.delayed;
    c.dlq.textContent = q.dead_lettered;
    c.replicas.textContent = q.replicas;
    c.state.replaceChildren(statusBadge(q.draining ? "draining" : "ready"));
    entry.draining = q.draining;
    entry.drain.textContent = q.draining ? "Resume" : "Drain";
    entry.row.dataset.draining = String(q.draining);
    const fixed = q.min_replicas !== null && q.min_replicas === q.max_replicas;
    const known = q.min_replicas !== null;
    c.bounds.textContent = !known ? "no pool" : fixed ? `fixed ${q.min_replicas}`
      : `${q.min_replicas}–${q.max_replicas}`;
    for (const control of [entry.input, entry.scale, entry.auto]) control.disabled = !known || fixed;
    entry.input.min = q.min_replicas ?? 1;
    if (q.max_replicas !== null) entry.input.max = q.max_replicas;
    if (force || document.activeElement !== entry.input) {
      entry.input.value = q.operator_target ?? "";
    }
    return entry.row;
  }

  async function loadQueues() {
    try {
      const queues = await api("GET", "/v1/queues");
      $("queues").tBodies[0].replaceChildren(...queues.map((q) => updateQueue(q)));
    } catch (err) {
      say(`queues: ${err.message}`, true);
    }
  }

  // -- workers ---------------------------------------------------------------------------

  function workerTable(summary) {
    const rows = summary.workers.map((w) => {
      const failing = Object.entries(w.health?.checks ?? {}).filter(([, v]) => v !== "ok");
      const health = failing.length
        ? failing.map(([k, v]) => `${k}: ${v}`).join("; ")
        : (w.health?.ok === false ? "failing" : "ok");
      return el("tr", { dataset: { replica: w.replica_id } },
        el("td", { class: "id" }, w.replica_id), el("td", {}, w.node),
        el("td", {}, statusBadge(w.late ? "late" : w.status)),
        el("td", { class: "num" }, w.health_score),
        el("td", { class: "num" }, w.metrics?.in_flight ?? 0),
        el("td", { class: "num" }, `${w.metrics?.tasks_ok ?? 0} / ${w.metrics?.tasks_failed ?? 0}`),
        el("td", {}, new Date(w.last_seen).toLocaleTimeString()),
        el("td", { class: failing.length ? "error" : "" }, health,
          w.health?.circuit && w.health.circuit !== "closed" ? ` (circuit ${w.health.circuit})` : ""));
    });
    const head = el("tr", {}, ...["replica", "node", "status", "score", "in flight",
      "ok / failed", "last seen", "health"].map((h) => el("th", {}, h)));
    return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
  }

  async function loadWorkers() {
    const box = $("workers");
    try {
      const tags = await api("GET", "/v1/workers");
      if (!tags.length) {
        box.replaceChildren(el("p", { class: "muted" }, "no workers registered"));
        return;
      }
      box.replaceChildren(...tags.flatMap((t) => [
        el("p", { class: "tag" }, `${t.tag} · health ${t.health_score}/100 · `,
          Object.entries(t.counts).filter(([, n]) => n).map(([s, n]) => `${n} ${s}`).join(", ")),
        workerTable(t),
      ]));
    } catch (err) {
      box.replaceChildren(el("p", { class: "muted" }, `workers: ${err.message}`));
    }
  }

  // -- jobs ------------------------------------------------------------------------------

  const jobRows = new Map(); // job id -> <tr>

  function filters() {
    return { task: $("filter-task").value, status: $("filter-status").value };
  }

  function matches(job) {
    const f = filters();
    return (!f.task || job.task === f.task) && (!f.status || job.status === f.status);
  }

  function jobActions(job) {
    const cell = el("td", { class: "actions" });
    if (RETRYABLE.has(job.status)) {
      const retry = el("button", { type: "button" }, "Retry");
      retry.addEventListener("click", async () => {
        await unlessOvertaken(job.id,
          () => act(`retry ${job.id}`, "POST", `/v1/jobs/${enc(job.id)}:retry`));
      });
      cell.append(retry);
    }
    if (CANCELLABLE.has(job.status)) {
      const cancel = el("button", { type: "button", class: "danger" }, "Cancel");
      cancel.addEventListener("click", async () => {
        await unlessOvertaken(job.id,
          () => act(`cancel ${job.id}`, "POST", `/v1/jobs/${enc(job.id)}:cancel`));
      });
      cell.append(cancel);
    }
    return cell;
  }

  // The last event seen per job (a counter, not a clock: the gateway's and the replicas'
  // clocks may differ). A job read over HTTP is older than any event that arrived while the
  // request was out: a retry's answer says "queued" after the stream said "succeeded".
  let eventCount = 0;
  const lastEvent = new Map();
  const LAST_EVENT_KEPT = 10000;

  function noteEvent(jobId) {
    lastEvent.delete(jobId); // re-inserted last: the map drops the longest-quiet job first
    lastEvent.set(jobId, ++eventCount);
    if (lastEvent.size > LAST_EVENT_KEPT) lastEvent.delete(lastEvent.keys().next().value);
  }

  /** Show the job `read` returns, unless an event for it arrived meanwhile (it is newer). */
  async function unlessOvertaken(jobId, read) {
    const before = lastEvent.get(jobId);
    const job = await read();
    if (job && lastEvent.get(jobId) === before) upsertJob(job);
  }

  /** Insert or refresh a job's row; `job` is a Job from the API or the fields of an event. */
  function upsertJob(job) {
    const old = jobRows.get(job.id);
    if (!matches(job)) {
      old?.remove();
      jobRows.delete(job.id);
      return;
    }
    const error = job.error ? `${job.error.type}: ${job.error.message}` : (old?.dataset.error ?? "");
    const attempts = job.max_attempts ? `${job.attempts}/${job.max_attempts}` : job.attempts;
    const updated = job.updated_at ?? job.time;
    const row = el("tr", { dataset: { jobId: job.id, status: job.status, error } },
      el("td", { class: "id", title: job.id }, job.id), el("td", {}, job.task),
      el("td", {}, job.queue), el("td", {}, statusBadge(job.status)),
      el("td", { class: "num" }, attempts ?? ""),
      el("td", {}, updated ? new Date(updated).toLocaleTimeString() : ""),
      el("td", { class: "error" }, error), jobActions(job));
    const body = $("jobs").tBodies[0];
    if (old) old.replaceWith(row);
    else body.prepend(row);
    jobRows.set(job.id, row);
    while (body.rows.length > MAX_JOB_ROWS) {
      const last = body.rows[body.rows.length - 1];
      jobRows.delete(last.dataset.jobId);
      last.remove();
    }
  }

  async function loadJobs() {
    const f = filters();
    const query = new URLSearchParams({ limit: "50" });
    if (f.task) query.set("task", f.task);
    if (f.status) query.set("status", f.status);
    try {
      const page = await api("GET", `/v1/jobs?${query}`);
      jobRows.clear();
      $("jobs").tBodies[0].replaceChildren();
      for (const job of page.items.reverse()) upsertJob(job);
    } catch (err) {
      say(`jobs: ${err.message}`, true);
    }
  }

  async function loadTasks() {
    try {
      const tasks = await api("GET", "/v1/tasks");
      $("filter-task").append(...tasks.map((t) => el("option", { value: t.name }, t.name)));
    } catch (err) {
      say(`tasks: ${err.message}`, true);
    }
  }

  // Details (the error) of failed jobs, fetched in small batches rather than once per event.
  const wantDetails = new Set();
  let detailsTimer = null;

  function fetchDetailsSoon(jobId) {
    wantDetails.add(jobId);
    detailsTimer ??= setTimeout(async () => {
      const ids = [...wantDetails].slice(0, 20);
      wantDetails.clear();
      detailsTimer = null;
      for (const id of ids) {
        try {
          await unlessOvertaken(id, () => api("GET", `/v1/jobs/${enc(id)}`));
        } catch { /* gone (expired): the event's row stays */ }
      }
    }, 300);
  }

  // -- live updates ----------------------------------------------------------------------

  let queuesTimer = null;

  function refreshQueuesSoon() {
    queuesTimer ??= setTimeout(() => {
      queuesTimer = null;
      loadQueues();
    }, 1000);
  }

  function onJobEvent(cloudEvent) {
    const d = cloudEvent.data ?? {};
    if (!d.job_id) return;
    noteEvent(d.job_id);
    upsertJob({ id: d.job_id, task: d.task, queue: d.queue, status: d.status,
      attempts: d.attempt, time: cloudEvent.time });
    if (DETAILED.has(d.status)) fetchDetailsSoon(d.job_id);
    refreshQueuesSoon();
  }

  function setConnection(state, detail = "") {
    const badge = $("conn");
    badge.dataset.state = state;
    badge.textContent = state === "live" ? "live" : `${state}${detail ? ` (${detail})` : ""}`;
  }

  /** Server-Sent Events from a fetch() body (the WHATWG event-stream format). */
  async function readEventStream(body, onMessage) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    let message = { event: "message", data: [], id: null };
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      for (;;) {
        const end = buffer.search(/\r\n|\r|\n/);
        // A trailing "\r" may be half of "\r\n": wait for the next chunk.
        if (end < 0 || (end === buffer.length - 1 && buffer[end] === "\r")) break;
        const line = buffer.slice(0, end);
        buffer = buffer.slice(end + (buffer.startsWith("\r\n", end) ? 2 : 1));
        if (line === "") {
          if (message.data.length) onMessage(message.event, message.data.join("\n"), message.id);
          message = { event: "message", data: [], id: null };
          continue;
        }
        if (line.startsWith(":")) continue; // comment / keep-alive
        const colon = line.indexOf(":");
        const field = colon < 0 ? line : line.slice(0, colon);
        let text = colon < 0 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "data") message.data.push(text);
        else if (field === "event") message.event = text;
        else if (field === "id") message.id = text;
      }
    }
  }

  let lastEventId = null;
  let stream = null; // AbortController of the open stream

  function onMessage(event, data, id) {
    if (id) lastEventId = id;
    if (event === "gap") {
      say("some events were missed (trimmed): reloading");
      loadJobs();
    } else if (event === "error") {
      setConnection("reconnecting", "server error");
    } else if (event.startsWith("job.")) {
      onJobEvent(JSON.parse(data));
    }
  }

  async function streamEvents() {
    let delayMs = 1000;
    for (;;) {
      const controller = new AbortController();
      stream = controller;
      try {
        const headers = { Accept: "text/event-stream", ...authHeaders() };
        if (lastEventId) headers["Last-Event-ID"] = lastEventId;
        const response = await fetch("/v1/events", { headers, signal: controller.signal,
          cache: "no-store" });
        if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
        setConnection("live");
        delayMs = 1000;
        await readEventStream(response.body, onMessage);
        setConnection("reconnecting", "stream ended");
      } catch (err) {
        if (!controller.signal.aborted) setConnection("reconnecting", err.message);
      }
      if (!controller.signal.aborted) {
        await new Promise((resolve) => setTimeout(resolve, delayMs));
        delayMs = Math.min(delayMs * 2, 30000);
      }
    }
  }

  // -- start -----------------------------------------------------------------------------

  function loadAll() {
    loadQueues();
    loadWorkers();
    loadJobs();
  }

  function restart() {
    lastEventId = null;
    stream?.abort(); // the loop reconnects at once with the new token
    loadAll();
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("token").value = sessionStorage.getItem(TOKEN_KEY) ?? "";
    $("token-form").addEventListener("submit", (e) => {
      e.preventDefault();
      const token = $("token").value.trim();
      if (token) sessionStorage.setItem(TOKEN_KEY, token);
      else sessionStorage.removeItem(TOKEN_KEY);
      say(token ? "token in use for this tab" : "no token");
      restart();
    });
    $("token-forget").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      $("token").value = "";
      say("token forgotten");
      restart();
    });
    $("job-filters").addEventListener("submit", (e) => {
      e.preventDefault();
      loadJobs();
    });
    loadTasks();
    loadAll();
    streamEvents();
    setInterval(loadQueues, QUEUE_REFRESH_MS);
    setInterval(loadWorkers, WORKER_REFRESH_MS);
  });
})();
