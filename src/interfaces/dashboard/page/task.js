// One task: what it was given and what it gave back, each execution (worker, fence, start,
// end, outcome), its progress while it runs, who did what to it, and the actions.

import { api, ApiError, query } from "./api.js";
import {
  confirmAction, describeError, h, json, message, ms, replace, section, table, taskLink, throttle, when,
} from "./ui.js";

const PROGRESS_MS = 1_000; // progress is not an event: read it again while the task runs

const ACTIONS = [
  // [action, label, question (destroys something), allowed while]
  ["retry", "Retry", null],
  ["cancel", "Cancel", "Cancel this task? A running task is asked to stop."],
  ["kill", "Kill", "Kill this task? Its worker stops it at once and it counts as failed."],
  ["duplicate", "Duplicate", null],
  ["delete", "Delete", "Delete this task and its record? This cannot be undone."],
];

export async function taskView(root, [encoded]) {
  const id = decodeURIComponent(encoded);
  const path = `/api/tasks/${encodeURIComponent(id)}`;
  const note = h("p", { class: "message", testid: "message", role: "status", hidden: true });
  const body = h("div");
  replace(
    root,
    h(
      "div",
      { class: "task", testid: "task" },
      h("h1", {}, "Task ", h("code", { testid: "task-id" }, id)),
      h(
        "div",
        { class: "buttons", testid: "actions" },
        ACTIONS.map(([action, label, question]) =>
          h(
            "button",
            {
              type: "button",
              class: question ? "danger" : "",
              testid: `action-${action}`,
              onclick: () => act(action, question),
            },
            label,
          ),
        ),
      ),
      note,
      body,
    ),
  );

  let task = null;
  let gone = false;
  async function load() {
    try {
      const [found, audit] = await Promise.all([
        api(path),
        api(`/api/audit${query({ target: id, limit: 50 })}`).catch(() => ({ items: [] })),
      ]);
      task = found;
      replace(body, details(task, audit.items));
    } catch (error) {
      if (error instanceof ApiError && error.status === 404) {
        gone = true;
        replace(body, h("p", { class: "message error", testid: "not-found" }, "No such task (deleted, or expired by retention)."));
        return;
      }
      throw error;
    }
  }

  async function act(action, question) {
    if (question && !(await confirmAction(question))) return;
    try {
      if (action === "delete") {
        await api(path, { method: "DELETE" });
        message(note, "Deleted.");
        await load();
        return;
      }
      const answer = await api(`${path}/${action}`, { method: "POST", body: action === "duplicate" ? {} : undefined });
      if (action === "duplicate") {
        replace(note, "Duplicated as ", taskLink(answer.id), ".");
        note.className = "message ok";
        note.hidden = false;
      } else {
        message(note, `${action}: the task is now ${answer.status}.`);
      }
      await load();
    } catch (error) {
      message(note, describeError(error), "error");
    }
  }

  const reload = throttle(() => load().catch(() => {}), 300);
  await load();
  const timer = setInterval(() => {
    if (!gone && task && task.status === "active") reload();
  }, PROGRESS_MS);
  return {
    onEvent(type, data) {
      if (type === "changes" && (data.more || data.ids.includes(id))) reload();
      if (type === "ready") reload();
    },
    dispose() {
      clearInterval(timer);
    },
  };
}

function details(task, audit) {
  const facts = [
    ["status", h("span", { testid: "task-status", class: `status ${task.status}` }, task.status)],
    ["type", task.taskName],
    ["queue", task.queue],
    ["group", task.group],
    ["priority", task.priority],
    ["attempts", `${task.attempts} of ${task.maxAttempts}`],
    ["stalls", task.stalls],
    ["timeout", ms(task.timeoutMs)],
    ["created", `${when(task.createdAt)}${task.createdBy ? ` by ${task.createdBy}` : ""}`],
    ["due", when(task.runAt)],
    ["started", when(task.startedAt)],
    ["finished", when(task.finishedAt)],
    ["worker", task.workerId],
    ["fence", task.fence],
  ];
  const list = h(
    "dl",
    { class: "facts" },
    facts
      .filter(([, value]) => value !== null && value !== undefined && value !== "")
      .flatMap(([name, value]) => [h("dt", {}, name), h("dd", {}, value)]),
  );
  return [
    list,
    task.status === "active" ? progress(task.progress) : null,
    section("Payload", "task-payload", json(task.payload)),
    task.result !== null && task.result !== undefined ? section("Result", "task-result", json(task.result)) : null,
    task.error ? section("Error", "task-error", errorOf(task.error)) : null,
    section("Executions", "history", history(task.history)),
    section("Audit", "audit", auditTable(audit)),
  ];
}

function progress(value) {
  const text = value === null || value === undefined ? "running" : JSON.stringify(value);
  const bar =
    typeof value === "number"
      ? h("progress", { max: 100, value: Math.max(0, Math.min(100, value)) })
      : null;
  return h("p", { class: "progress", testid: "task-progress" }, bar, ` ${text}`);
}

function errorOf(error) {
  return [
    h("p", { class: "error-text" }, h("strong", {}, error.type), `: ${error.message}`),
    error.traceback ? h("pre", { class: "traceback", testid: "traceback" }, error.traceback) : null,
  ];
}

function history(entries) {
  const rows = entries.map((entry) =>
    h(
      "tr",
      { testid: "execution" },
      h("td", {}, entry.workerId),
      h("td", { class: "number", testid: "fence" }, entry.fence === null || entry.fence === undefined ? "–" : String(entry.fence)),
      h("td", {}, when(entry.startedAt)),
      h("td", {}, when(entry.finishedAt)),
      h("td", { class: "number" }, ms(Date.parse(entry.finishedAt) - Date.parse(entry.startedAt))),
      h("td", { class: `status ${entry.outcome}` }, entry.outcome),
    ),
  );
  const head = ["worker", "fence", "started", "ended", "took", "outcome"];
  return table("history-table", head, rows, "not run yet");
}

function auditTable(entries) {
  const rows = entries.map((entry) =>
    h(
      "tr",
      { testid: "audit-entry" },
      h("td", {}, when(entry.at)),
      h("td", {}, entry.actor),
      h("td", {}, entry.action),
      h("td", {}, Object.keys(entry.detail || {}).length ? JSON.stringify(entry.detail) : ""),
    ),
  );
  return table("audit-table", ["when", "who", "did", "detail"], rows, "no operator actions");
}
