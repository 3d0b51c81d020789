// Building the page. Text goes in as text (textContent), never as HTML: payloads, errors and
// names come from producers, and a producer is not trusted to write the admin's page.

import { ApiError } from "./api.js";

export function h(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "testid") node.dataset.testid = value;
    else if (value === true) node.setAttribute(name, "");
    else node.setAttribute(name, String(value));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
  return node;
}

export function link(hash, ...children) {
  return h("a", { href: hash }, ...children);
}

export function taskLink(id) {
  return link(`#/task/${encodeURIComponent(id)}`, id);
}

export function when(value) {
  if (!value) return "";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

export function ms(value) {
  if (value === null || value === undefined) return "–";
  return value < 1000 ? `${value} ms` : `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`;
}

export function json(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

export function table(testid, head, rows, empty = "none") {
  const body = rows.length
    ? rows
    : [h("tr", {}, h("td", { colspan: head.length, class: "empty" }, empty))];
  return h(
    "table",
    { testid },
    h("thead", {}, h("tr", {}, head.map((name) => h("th", {}, name)))),
    h("tbody", {}, body),
  );
}

export function section(title, testid, ...children) {
  return h("section", { class: "card", testid }, h("h2", {}, title), ...children);
}

// What an action answered, or why it failed: one line per page, read by screen readers too.
export function message(node, text, kind = "ok") {
  node.className = `message ${kind}`;
  node.hidden = false;
  replace(node, text);
}

export function describeError(error) {
  if (!(error instanceof ApiError)) return String(error.message || error);
  const fields = error.fields;
  if (!fields) return error.message;
  const parts = Object.entries(fields).map(([name, why]) => `${name}: ${why}`);
  return `${error.message} (${parts.join("; ")})`;
}

// A confirmation in a dialog of the page (not window.confirm): resolves to true or false.
export function confirmAction(question) {
  return new Promise((resolve) => {
    const dialog = h("dialog", { testid: "confirm", class: "confirm" });
    const close = (answer) => {
      dialog.close();
      dialog.remove();
      resolve(answer);
    };
    replace(
      dialog,
      h("p", {}, question),
      h(
        "div",
        { class: "buttons" },
        h("button", { type: "button", testid: "confirm-no", onclick: () => close(false) }, "Keep"),
        h(
          "button",
          { type: "button", class: "danger", testid: "confirm-yes", onclick: () => close(true) },
          "Yes, do it",
        ),
      ),
    );
    dialog.addEventListener("cancel", () => close(false));
    document.body.append(dialog);
    dialog.showModal();
  });
}

// Calls `fn` at most once per `wait` ms however often `schedule` is called: live events
// trigger a reload of what is shown, and a burst of a thousand events is one reload.
export function throttle(fn, wait) {
  let timer = null;
  let again = false;
  const run = async () => {
    again = false;
    try {
      await fn();
    } finally {
      timer = setTimeout(() => {
        timer = null;
        if (again) schedule();
      }, wait);
    }
  };
  const schedule = () => {
    if (timer === null) {
      timer = 0;
      run();
    } else {
      again = true;
    }
  };
  return schedule;
}
