// The overview: queues and their counts, throughput and failures over the last hour, task
// types and their durations, live workers and what they run, recent failures, schedules.

import { api } from "./api.js";
import { chart } from "./chart.js";
import {
  describeError, h, link, message, ms, replace, section, table, taskLink, throttle, when,
} from "./ui.js";

const STATUSES = ["waiting", "active", "delayed", "completed", "failed", "cancelled"];
const REFRESH_MS = 10_000; // workers and schedules change without task events
const LIVE_MS = 1_000;
const SHARED_MS = 1_000; // how old the API's shared overview may be (MAX_AGE_S)

export async function overviewView(root) {
  const note = h("p", { class: "message", testid: "message", role: "status", hidden: true });
  const parts = {
    queues: h("div"),
    chart: h("div"),
    types: h("div"),
    workers: h("div"),
    failures: h("div"),
    schedules: h("div"),
  };
  replace(
    root,
    h(
      "div",
      { class: "overview", testid: "overview" },
      note,
      section("Queues", "queues", parts.queues),
      section("Last hour", "throughput", parts.chart),
      section("Task types", "task-types", parts.types),
      section("Workers", "workers", parts.workers),
      section("Recent failures", "recent-failures", parts.failures),
      section("Schedules", "schedules", parts.schedules),
    ),
  );

  const actions = { pause: (queue, paused) => pause(queue, paused, note, actions) };
  // One call: the API makes the overview once a second for every page open on it, so
  // twenty pages cost it what one does. A `changes` event reloads it, at most once per LIVE_MS;
  // workers and schedules also change without them, so it is read every REFRESH_MS too.
  async function reload() {
    const overview = await api("/api/overview");
    replace(parts.queues, queuesTable(overview.stats, actions));
    replace(parts.chart, throughput(overview.stats));
    replace(parts.types, typesTable(overview.stats));
    replace(parts.workers, workersTable(overview.workers, overview.running));
    replace(parts.failures, failuresTable(overview.failures));
    replace(parts.schedules, schedulesTable(overview.schedules));
  }
  const soon = throttle(() => reload().catch(() => {}), LIVE_MS);
  // The answer a reload gets may have been read up to SHARED_MS before the event that
  // asked for it: once events stop, one more reload, late enough to see their effect.
  let last = null;
  function settle() {
    soon();
    clearTimeout(last);
    last = setTimeout(soon, SHARED_MS + 200);
  }
  actions.settle = settle;
  await reload();
  const timer = setInterval(soon, REFRESH_MS);
  return {
    onEvent(type) {
      if (type === "changes" || type === "ready") settle();
    },
    dispose() {
      clearInterval(timer);
      clearTimeout(last);
    },
  };
}

async function pause(queue, paused, note, actions) {
  try {
    await api(`/api/queues/${encodeURIComponent(queue)}/${paused ? "pause" : "resume"}`, {
      method: "POST",
    });
    message(note, `Queue ${queue} ${paused ? "paused" : "resumed"}.`);
    showPaused(queue, paused, actions);
    actions.settle();
  } catch (error) {
    message(note, describeError(error), "error");
  }
}

// The API said so: show it now, before the shared overview catches up.
function showPaused(queue, paused, actions) {
  const row = document.querySelector(`[data-queue="${CSS.escape(queue)}"]`);
  if (!row) return;
  const state = row.querySelector("[data-testid=paused]");
  state.textContent = paused ? "paused" : "running";
  state.className = paused ? "paused" : "";
  state.nextElementSibling.replaceChildren(pauseButton(queue, paused, actions));
}

function pauseButton(queue, paused, actions) {
  return paused
    ? h("button", { type: "button", testid: "resume", onclick: () => actions.pause(queue, false) }, "Resume")
    : h("button", { type: "button", testid: "pause", onclick: () => actions.pause(queue, true) }, "Pause");
}

function queuesTable(stats, actions) {
  const rows = Object.entries(stats.queues)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, counts]) =>
      h(
        "tr",
        { testid: `queue-${name}`, "data-queue": name },
        h("th", {}, link(`#/tasks?queue=${encodeURIComponent(name)}`, name)),
        STATUSES.map((status) =>
          h(
            "td",
            { class: "number", testid: `count-${status}` },
            link(
              `#/tasks?${new URLSearchParams({ queue: name, status })}`,
              String(counts[status]),
            ),
          ),
        ),
        h("td", { testid: "paused", class: counts.paused ? "paused" : "" },
          counts.paused ? "paused" : "running"),
        h("td", {}, pauseButton(name, counts.paused, actions)),
      ),
    );
  const totals = h(
    "p",
    { class: "totals", testid: "totals" },
    STATUSES.map((status) => h("span", { testid: `total-${status}` }, `${status} ${stats[status]}`)),
  );
  return [totals, table("queue-table", ["queue", ...STATUSES, "state", ""], rows, "no queues yet")];
}

function throughput(stats) {
  const done = stats.throughput;
  const summary = h(
    "p",
    { class: "totals" },
    h("span", { testid: "last-minute" }, `${done.lastMinute} finished in the last minute`),
    h("span", { testid: "last-hour" }, `${done.lastHour} in the last hour`),
  );
  return [summary, chart(done.perMinute || [])];
}

function typesTable(stats) {
  const rows = Object.entries(stats.taskTypes)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([name, info]) =>
      h(
        "tr",
        { testid: `type-${name}` },
        h("th", {}, link(`#/tasks?taskName=${encodeURIComponent(name)}`, name)),
        ["waiting", "active", "completed", "failed"].map((status) =>
          h("td", { class: "number" }, String(info.counts[status] ?? 0)),
        ),
        h("td", { class: "number" }, ms(info.durationMs.p50)),
        h("td", { class: "number" }, ms(info.durationMs.p95)),
      ),
    );
  const head = ["task type", "waiting", "active", "completed", "failed", "p50", "p95"];
  return table("type-table", head, rows, "no task types");
}

function workersTable(workers, active) {
  const running = new Map();
  for (const task of active) {
    const list = running.get(task.workerId) || [];
    list.push(task);
    running.set(task.workerId, list);
  }
  const rows = workers.map((worker) =>
    h(
      "tr",
      { testid: "worker" },
      h("th", {}, worker.workerId),
      h("td", {}, worker.queues.join(", ")),
      // The heartbeat's count is seconds old; the active tasks are as of now.
      h("td", { class: "number" },
        `${Math.max(worker.running, (running.get(worker.workerId) || []).length)} / ${worker.concurrency}`),
      h("td", { class: "number" }, String(worker.processed)),
      h("td", {}, when(worker.startedAt)),
      h(
        "td",
        { class: "running" },
        (running.get(worker.workerId) || []).map((task) =>
          h("span", { class: "chip" }, taskLink(task.id), ` ${task.taskName}`),
        ),
      ),
    ),
  );
  const head = ["worker", "queues", "running", "processed", "since", "running now"];
  return table("worker-table", head, rows, "no live workers");
}

function failuresTable(tasks) {
  const rows = tasks.map((task) =>
    h(
      "tr",
      { testid: "failure" },
      h("td", {}, taskLink(task.id)),
      h("td", {}, task.taskName),
      h("td", {}, task.queue),
      h("td", { class: "error-text" }, task.error ? task.error.message : ""),
      h("td", {}, when(task.finishedAt)),
    ),
  );
  return table("failure-table", ["task", "type", "queue", "error", "failed at"], rows, "no failures");
}

function schedulesTable(schedules) {
  const rows = schedules.map((schedule) =>
    h(
      "tr",
      { testid: `schedule-${schedule.name}` },
      h("th", {}, schedule.name),
      h("td", {}, schedule.cron ? `cron ${schedule.cron} (${schedule.timezone})` : `every ${ms(schedule.everyMs)}`),
      h("td", {}, schedule.task.taskName),
      h("td", {}, schedule.status),
      h("td", { testid: "next-run" }, when(schedule.nextRunAt)),
      h("td", {}, schedule.lastTaskId ? taskLink(schedule.lastTaskId) : ""),
      h("td", { class: "number" }, String(schedule.fired)),
    ),
  );
  const head = ["schedule", "when", "task type", "status", "next", "last task", "fired"];
  return table("schedule-table", head, rows, "no schedules");
}
