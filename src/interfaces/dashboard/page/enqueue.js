// Enqueue a task from a form, or from a saved template; the API's answer is shown as is,
// errors by field.

import { api, ApiError } from "./api.js";
import { describeError, h, message, replace, section, taskLink } from "./ui.js";

export async function enqueueView(root) {
  const [stats, templates] = await Promise.all([api("/api/stats"), api("/api/templates")]);
  const note = h("p", { class: "message", testid: "message", role: "status", hidden: true });
  replace(
    root,
    h(
      "div",
      { class: "enqueue", testid: "enqueue" },
      note,
      section("New task", "enqueue-section", taskForm(Object.keys(stats.taskTypes).sort(), note)),
      section("From a template", "templates", templateForm(templates, note)),
    ),
  );
  return {};
}

function taskForm(names, note) {
  const input = (name, attributes = {}) => h("input", { name, ...attributes });
  const form = h(
    "form",
    { class: "form", testid: "enqueue-form" },
    h("label", {}, "Task type", h("select", { name: "taskName", required: true },
      names.map((name) => h("option", { value: name }, name)))),
    h("label", { class: "wide" }, "Payload (JSON object)",
      h("textarea", { name: "payload", rows: 6, spellcheck: "false" }, "{}")),
    h("label", {}, "Queue", input("queue", { placeholder: "default", maxlength: 100 })),
    h("label", {}, "Group", input("group", { placeholder: "none", maxlength: 100 })),
    h("label", {}, "Priority", input("priority", { type: "number", step: 1 })),
    h("label", {}, "Delay (ms)", input("delayMs", { type: "number", min: 0, step: 1 })),
    h("label", {}, "Attempts", input("attempts", { type: "number", min: 1, step: 1 })),
    h("label", {}, "Id (idempotency)", input("customJobId", { maxlength: 200 })),
    h("button", { type: "submit", testid: "enqueue-submit" }, "Enqueue"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData(form);
    let payload;
    try {
      payload = JSON.parse(data.get("payload") || "{}");
    } catch (error) {
      return message(note, `payload: not JSON (${error.message})`, "error");
    }
    const body = { taskName: data.get("taskName"), payload };
    for (const name of ["queue", "group", "customJobId"]) if (data.get(name)) body[name] = data.get(name);
    for (const name of ["priority", "delayMs", "attempts"]) {
      if (data.get(name) !== "") body[name] = Number(data.get(name));
    }
    await submit(note, () => api("/api/tasks", { method: "POST", body }));
  });
  return form;
}

function templateForm(templates, note) {
  if (!templates.length) return h("p", { class: "empty" }, "No templates saved (POST /api/templates).");
  const select = h(
    "select",
    { name: "template", testid: "template" },
    templates.map((template) => h("option", { value: template.id }, `${template.name} (${template.task.type})`)),
  );
  const form = h(
    "form",
    { class: "form", testid: "template-form" },
    h("label", {}, "Template", select),
    h("button", { type: "submit", testid: "template-submit" }, "Enqueue from template"),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = encodeURIComponent(select.value);
    await submit(note, () => api(`/api/templates/${id}/use`, { method: "POST" }));
  });
  return form;
}

async function submit(note, call) {
  try {
    const task = await call();
    replace(note, "Enqueued ", taskLink(task.id), ` (${task.status}).`);
    note.className = "message ok";
    note.hidden = false;
  } catch (error) {
    const text = error instanceof ApiError && error.status === 429
      ? `The queue is full: ${describeError(error)}`
      : describeError(error);
    message(note, text, "error");
  }
}
