// The jobs page: sign in with the API's tokens, then show queues, workers and
// jobs every two seconds, with retry, cancel and a canary. Every figure comes
// from the admin API, which checks the token; text is set with textContent, so
// nothing a job carries is ever read as HTML.
"use strict";

const API = "/api/v1";
const TOKEN_KEY = "nexus.admin.access_token";
const REFRESH_MS = 2000;
let timer = null;

const $ = (id) => document.getElementById(id);

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(API + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const payload = response.status === 204 ? null : await response.json();
  if (response.status === 401) {
    signOut("Your session has ended; sign in again.");
    throw new Error("signed out");
  }
  if (!response.ok) {
    throw new Error(`${payload.code}: ${payload.detail}`);
  }
  return payload;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text === null || text === undefined ? "—" : String(text);
  if (className) td.className = className;
  return td;
}

function fill(tableId, rows) {
  const body = $(tableId).querySelector("tbody");
  body.replaceChildren(...rows);
}

function ago(iso) {
  if (!iso) return null;
  const seconds = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  return seconds < 90 ? `${seconds.toFixed(0)} s ago` : `${(seconds / 60).toFixed(0)} min ago`;
}

function renderQueues(queues) {
  fill("queues", queues.map((q) => {
    const tr = document.createElement("tr");
    tr.dataset.queue = q.name;
    const oldest = q.oldest_waiting_seconds === null ? null : `${q.oldest_waiting_seconds.toFixed(1)} s`;
    tr.append(cell(`${q.name} (${q.priority})`), cell(q.waiting_in_rq), cell(q.rows_waiting),
      cell(q.rows_scheduled), cell(q.rows_running), cell(oldest));
    return tr;
  }));
}

function renderWorkers(workers) {
  if (workers.length === 0) {
    const tr = document.createElement("tr");
    const td = cell("No worker is running.");
    td.colSpan = 6;
    tr.append(td);
    fill("workers", [tr]);
    return;
  }
  fill("workers", workers.map((w) => {
    const tr = document.createElement("tr");
    tr.dataset.worker = w.name;
    tr.append(cell(w.name), cell(w.state), cell(w.queues.join(", ")), cell(w.current_job_id),
      cell(ago(w.last_heartbeat)), cell(`${w.successful_jobs} / ${w.failed_jobs}`));
    return tr;
  }));
}

function actionButton(label, job, action) {
  const button = document.createElement("button");
  button.textContent = label;
  button.dataset.action = action;
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      await api("POST", `/admin/jobs/${job.id}/${action}`);
      await refresh();
    } catch (error) {
      $("board-error").textContent = error.message;
      button.disabled = false;
    }
  });
  return button;
}

function renderJobs(jobs) {
  fill("jobs", jobs.map((job) => {
    const tr = document.createElement("tr");
    tr.dataset.job = job.id;
    tr.dataset.status = job.status;
    const error = job.error ? `${job.error.type}: ${job.error.message}` : null;
    const actions = document.createElement("td");
    if (["failed", "canceled"].includes(job.status)) actions.append(actionButton("Retry", job, "retry"));
    if (["pending", "queued", "scheduled", "started"].includes(job.status)) {
      actions.append(actionButton("Cancel", job, "cancel"));
    }
    tr.append(cell(job.id.slice(0, 8)), cell(job.name), cell(job.status, `status-${job.status}`),
      cell(`${job.attempts} / ${job.max_attempts}`), cell(job.reason), cell(error, "error-text"),
      cell(ago(job.created_at)), actions);
    return tr;
  }));
}

async function refresh() {
  const status = $("status-filter").value;
  const query = status ? `?limit=50&status=${encodeURIComponent(status)}` : "?limit=50";
  try {
    const [queues, workers, jobs] = await Promise.all([
      api("GET", "/admin/queues"),
      api("GET", "/admin/workers"),
      api("GET", `/admin/jobs${query}`),
    ]);
    renderQueues(queues.data);
    renderWorkers(workers.data);
    renderJobs(jobs.data);
    $("board-error").textContent = "";
  } catch (error) {
    if (error.message !== "signed out") $("board-error").textContent = error.message;
  }
}

function showBoard(email) {
  $("sign-in").hidden = true;
  $("board").hidden = false;
  $("sign-out").hidden = false;
  $("who").textContent = email ? `Signed in as ${email}` : "";
  refresh();
  clearInterval(timer);
  timer = setInterval(refresh, REFRESH_MS);
}

function signOut(message) {
  sessionStorage.removeItem(TOKEN_KEY);
  clearInterval(timer);
  $("board").hidden = true;
  $("sign-out").hidden = true;
  $("who").textContent = "";
  $("sign-in").hidden = false;
  $("sign-in-error").textContent = message || "";
}

async function signIn(event) {
  event.preventDefault();
  const form = event.target;
  const response = await fetch(`${API}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: form.email.value, password: form.password.value }),
  });
  const payload = await response.json();
  if (!response.ok) {
    $("sign-in-error").textContent = payload.detail;
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, payload.data.access_token);
  const me = await api("GET", "/auth/me");
  if (me.data.role !== "admin") {
    signOut("This page is for admins.");
    return;
  }
  form.password.value = "";
  showBoard(me.data.email);
}

document.addEventListener("DOMContentLoaded", async () => {
  $("sign-in").addEventListener("submit", signIn);
  $("sign-out").addEventListener("click", async () => {
    try { await api("POST", "/auth/logout"); } catch (_) { /* signed out either way */ }
    signOut();
  });
  $("status-filter").addEventListener("change", refresh);
  $("canary").addEventListener("click", async () => {
    try {
      await api("POST", "/admin/jobs/canary", { seconds: 1 });
      await refresh();
    } catch (error) {
      $("board-error").textContent = error.message;
    }
  });
  if (token()) {
    try {
      const me = await api("GET", "/auth/me");
      showBoard(me.data.email);
      return;
    } catch (_) { /* fall through to the form */ }
  }
  signOut();
});
