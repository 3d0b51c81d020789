// Task lists: the API's filters, cursor paging, a selection for bulk retry and cancel, and
// CSV export of the same filter. The filter lives in the URL's hash, so Back works.

import { api, download, query } from "./api.js";
import {
  confirmAction, describeError, h, message, replace, table, taskLink, throttle, when,
} from "./ui.js";

const STATUSES = ["", "waiting", "active", "delayed", "completed", "failed", "cancelled"];
const FILTERS = ["status", "taskName", "queue", "search", "from", "to"];
const LIVE_MS = 2_000;

export async function tasksView(root, [search = ""]) {
  const params = new URLSearchParams(search);
  const filter = Object.fromEntries(FILTERS.map((name) => [name, params.get(name) || ""]));
  const limit = params.get("limit") || "20";
  const cursor = params.get("cursor") || "";
  const selected = new Set();

  const note = h("p", { class: "message", testid: "message", role: "status", hidden: true });
  const list = h("div");
  const count = h("span", { testid: "total" });
  const bulk = h(
    "div",
    { class: "buttons" },
    h("button", { type: "button", testid: "bulk-retry", onclick: () => act("retry") }, "Retry selected"),
    h("button", { type: "button", class: "danger", testid: "bulk-cancel", onclick: () => act("cancel") }, "Cancel selected"),
    h("button", { type: "button", testid: "export", onclick: exportShown }, "Export CSV"),
    count,
  );
  const pager = h("div", { class: "buttons pager" });
  replace(root, h("div", { testid: "tasks" }, filterForm(filter, limit), bulk, note, list, pager));

  let shown = [];
  async function load() {
    const page = await api(`/api/tasks${query(listQuery(filter, limit, cursor))}`);
    shown = page.items;
    replace(list, rowsTable(shown, selected));
    count.textContent = page.total === null ? "" : `${page.total} tasks`;
    replace(
      pager,
      cursor ? h("button", { type: "button", testid: "newer", onclick: () => history.back() }, "← Newer") : null,
      page.nextCursor
        ? h("a", { class: "button", testid: "next-page", href: hashFor(filter, limit, page.nextCursor) }, "Older →")
        : null,
    );
  }

  async function act(action) {
    const ids = [...selected];
    if (!ids.length) return message(note, "Select tasks first.", "error");
    if (action === "cancel" && !(await confirmAction(`Cancel ${ids.length} task(s)?`))) return;
    try {
      const answer = await api(`/api/tasks/bulk/${action}`, { method: "POST", body: { ids } });
      message(note, outcomes(action, answer.results));
      selected.clear();
      await load();
    } catch (error) {
      message(note, describeError(error), "error");
    }
  }

  async function exportShown() {
    try {
      await download(`/api/tasks/export${query(apiFilter(filter))}`, "tasks.csv");
    } catch (error) {
      message(note, describeError(error), "error");
    }
  }

  // The first page follows what happens; an older page keeps its rows and updates their
  // status in place, so what the reader is looking at does not move.
  async function restate() {
    const page = await api(`/api/tasks${query(listQuery(filter, limit, cursor))}`);
    const now = new Map(page.items.map((task) => [task.id, task.status]));
    for (const row of list.querySelectorAll("tr[data-id]")) {
      const status = now.get(row.dataset.id);
      const cell = row.querySelector("[data-testid=status]");
      if (status && cell.textContent !== status) {
        cell.textContent = status;
        cell.className = `status ${status}`;
      }
    }
  }
  const reload = throttle(() => (cursor ? restate() : load()).catch(() => {}), LIVE_MS);
  await load();
  return {
    onEvent(type, data) {
      if (type === "ready") return reload();
      if (type !== "changes") return;
      const touched = cursor
        ? data.more || shown.some((task) => data.ids.includes(task.id))
        : !filter.queue || data.queues.includes(filter.queue);
      if (touched) reload();
    },
  };
}

function filterForm(filter, limit) {
  const field = (name, label, input) => h("label", {}, label, input);
  const text = (name, placeholder) =>
    h("input", { name, value: filter[name], placeholder, maxlength: 200 });
  const time = (name) => h("input", { name, type: "datetime-local", value: localTime(filter[name]) });
  const status = h(
    "select",
    { name: "status" },
    STATUSES.map((value) =>
      h("option", { value, selected: value === filter.status }, value || "any status"),
    ),
  );
  const size = h(
    "select",
    { name: "limit" },
    ["20", "50", "100"].map((value) => h("option", { value, selected: value === limit }, value)),
  );
  const form = h(
    "form",
    { class: "filters", testid: "filters" },
    field("status", "Status", status),
    field("taskName", "Task type", text("taskName", "any")),
    field("queue", "Queue", text("queue", "any")),
    field("search", "Search", text("search", "id prefix or words")),
    field("from", "Created from", time("from")),
    field("to", "to", time("to")),
    field("limit", "Per page", size),
    h("button", { type: "submit", testid: "apply" }, "Show"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const chosen = Object.fromEntries(FILTERS.map((name) => [name, data.get(name) || ""]));
    for (const name of ["from", "to"]) if (chosen[name]) chosen[name] = new Date(chosen[name]).toISOString();
    location.hash = hashFor(chosen, data.get("limit"), "");
  });
  return form;
}

function rowsTable(tasks, selected) {
  const rows = tasks.map((task) => {
    const box = h("input", {
      type: "checkbox",
      testid: "select",
      "aria-label": `select ${task.id}`,
      checked: selected.has(task.id),
    });
    box.addEventListener("change", () => (box.checked ? selected.add(task.id) : selected.delete(task.id)));
    return h(
      "tr",
      { testid: "task-row", "data-id": task.id },
      h("td", {}, box),
      h("td", {}, taskLink(task.id)),
      h("td", {}, task.taskName),
      h("td", {}, task.queue),
      h("td", { testid: "status", class: `status ${task.status}` }, task.status),
      h("td", { class: "number" }, `${task.attempts}/${task.maxAttempts}`),
      h("td", {}, when(task.createdAt)),
      h("td", {}, when(task.finishedAt)),
    );
  });
  const head = ["", "id", "type", "queue", "status", "attempts", "created", "finished"];
  return table("task-table", head, rows, "no tasks match");
}

function outcomes(action, results) {
  const ok = results.filter((result) => result.outcome === "ok").length;
  const refused = results
    .filter((result) => result.outcome !== "ok")
    .map((result) => `${result.id}: ${result.outcome}${result.detail ? ` (${result.detail})` : ""}`);
  const done = action === "retry" ? "retried" : "cancelled";
  return refused.length ? `${ok} ${done}; refused: ${refused.join(", ")}` : `${ok} ${done}.`;
}

function apiFilter(filter) {
  return Object.fromEntries(Object.entries(filter).filter(([, value]) => value));
}

function listQuery(filter, limit, cursor) {
  return { ...apiFilter(filter), limit, cursor: cursor || undefined };
}

function hashFor(filter, limit, cursor) {
  return `#/tasks${query({ ...apiFilter(filter), limit: limit === "20" ? "" : limit, cursor })}`;
}

function localTime(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const local = new Date(date.getTime() - date.getTimezoneOffset() * 60_000);
  return local.toISOString().slice(0, 16);
}
