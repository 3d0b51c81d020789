// The dashboard: a key form, then views chosen by the URL's hash, fed by the API and kept
// current by its event stream.

import { api, ApiError, key, validKey, watchEvents } from "./api.js";
import { enqueueView } from "./enqueue.js";
import { overviewView } from "./overview.js";
import { taskView } from "./task.js";
import { tasksView } from "./tasks.js";
import { h, replace } from "./ui.js";

const ROUTES = [
  [/^#?\/?$/, overviewView],
  [/^#\/tasks(?:\?(.*))?$/, tasksView],
  [/^#\/task\/([^?]+)$/, taskView],
  [/^#\/enqueue$/, enqueueView],
];

let current = null; // the view shown: {onEvent, dispose}
let stream = null;
let live = null;

async function start() {
  const form = document.getElementById("login");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    login(form);
  });
  // An open API (no API_KEYS) or a key already given in this tab: straight in.
  try {
    if (await admitted()) open();
    else showLogin(form);
  } catch (error) {
    showLogin(form, `The API did not answer: ${error.message}`);
  }
}

async function admitted() {
  try {
    await api("/api/stats");
    return true;
  } catch (error) {
    if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
      key.clear();
      return false;
    }
    throw error;
  }
}

function showLogin(form, why) {
  form.hidden = false;
  const error = form.querySelector("[data-testid=login-error]");
  error.hidden = !why;
  error.textContent = why || "";
  form.querySelector("input").focus();
}

async function login(form) {
  const input = form.elements.key;
  const value = input.value.trim();
  input.value = "";
  if (!validKey(value)) {
    showLogin(form, "That is not a key: printable characters without spaces.");
    return;
  }
  key.set(value);
  try {
    await api("/api/stats");
  } catch (error) {
    key.clear();
    const why =
      error instanceof ApiError && error.status === 403
        ? "That key is not an admin key: the dashboard is for admins only."
        : error instanceof ApiError && error.status === 401
          ? "Wrong key."
          : `The API did not answer: ${error.message}`;
    showLogin(form, why);
    return;
  }
  open();
}

function logout() {
  key.clear();
  if (stream) stream.stop();
  location.hash = "";
  location.reload();
}

function open() {
  document.getElementById("login").remove();
  live = h("span", { class: "live off", testid: "live", title: "live updates" }, "offline");
  const nav = h(
    "nav",
    { testid: "nav" },
    h("strong", {}, "Conveyor"),
    h("a", { href: "#/" }, "Overview"),
    h("a", { href: "#/tasks" }, "Tasks"),
    h("a", { href: "#/tasks?status=failed" }, "Failed"),
    h("a", { href: "#/enqueue" }, "Enqueue"),
    h("span", { class: "spacer" }),
    live,
    key.get() ? h("button", { type: "button", testid: "logout", onclick: logout }, "Forget key") : null,
  );
  const view = h("div", { id: "view" });
  replace(document.getElementById("app"), nav, view);
  stream = watchEvents(onEvent, onState);
  window.addEventListener("hashchange", route);
  route();
}

function onState(up, error) {
  live.textContent = up ? "live" : "offline";
  live.className = `live ${up ? "on" : "off"}`;
  if (error) logout();
}

function onEvent(type, data) {
  if (current && current.onEvent) current.onEvent(type, data);
}

let shown = 0; // which navigation the view on screen belongs to

async function route() {
  if (current && current.dispose) current.dispose();
  current = null;
  const mine = ++shown;
  const root = document.getElementById("view");
  const hash = location.hash || "#/";
  for (const [pattern, view] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    replace(root, h("p", { class: "loading" }, "Loading…"));
    try {
      const made = await view(root, match.slice(1));
      // Left before it was ready: the newer view owns the screen and the events.
      if (mine !== shown) {
        if (made && made.dispose) made.dispose();
        return;
      }
      current = made;
    } catch (error) {
      if (mine !== shown) return;
      if (error instanceof ApiError && error.status === 401) return logout();
      replace(root, h("p", { class: "message error", role: "alert" }, error.message));
    }
    return;
  }
  replace(root, h("p", { class: "message error" }, "No such page."));
}

start();
