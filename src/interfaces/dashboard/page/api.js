// The API as the page sees it: every call carries the admin key in a header, never in a
// URL or a cookie, and the key lives in this tab's sessionStorage only (gone with the tab).

const KEY = "conveyor.adminKey";

export class ApiError extends Error {
  constructor(status, body) {
    const detail = body && typeof body === "object" ? body.detail || body.error : body;
    super(detail ? `${status}: ${detail}` : `HTTP ${status}`);
    this.status = status;
    this.body = body;
  }

  get fields() {
    return (this.body && this.body.fields) || null;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

// A key is sent as a header value: refuse what a header cannot carry before fetch throws.
export function validKey(value) {
  return /^[\x21-\x7e]{1,512}$/.test(value);
}

function headers(extra = {}) {
  const all = { Accept: "application/json", ...extra };
  const value = key.get();
  if (value) all["X-API-Key"] = value;
  return all;
}

async function send(path, { method = "GET", body, signal, accept } = {}) {
  const init = { method, signal, credentials: "omit", cache: "no-store", headers: headers() };
  if (accept) init.headers.Accept = accept;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) {
    const text = await response.text();
    let parsed = text;
    try {
      parsed = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    throw new ApiError(response.status, parsed);
  }
  return response;
}

export async function api(path, options) {
  const response = await send(path, options);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export async function download(path, filename) {
  const response = await send(path, { accept: "text/csv" });
  const url = URL.createObjectURL(await response.blob());
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

export function query(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null && value !== "") search.set(name, value);
  }
  const text = search.toString();
  return text ? `?${text}` : "";
}

// /api/events?summary=true read with fetch, since EventSource cannot send a header: at most
// one `changes` event a second ({count, queues, ids, more}) however busy the queues are, so
// the page reads again what changed and never each transition. `onEvent(type, data)` gets
// each event, `onState(live)` whether the stream is up; it reconnects with a growing pause
// until `stop()` is called.
export function watchEvents(onEvent, onState) {
  let controller = null;
  let stopped = false;
  let pause = 500;

  async function readOnce() {
    controller = new AbortController();
    const response = await send("/api/events?summary=true", {
      signal: controller.signal,
      accept: "text/event-stream",
    });
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        dispatch(block);
      }
    }
  }

  function dispatch(block) {
    let type = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) type = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    let parsed = null;
    try {
      parsed = JSON.parse(data.join("\n"));
    } catch {
      return;
    }
    if (type === "ready") {
      pause = 500;
      onState(true);
    }
    onEvent(type, parsed);
  }

  async function loop() {
    while (!stopped) {
      try {
        await readOnce();
      } catch (error) {
        if (stopped) return;
        if (error instanceof ApiError && (error.status === 401 || error.status === 403)) {
          onState(false, error);
          return;
        }
      }
      onState(false);
      if (stopped) return;
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 10_000);
    }
  }

  loop();
  return {
    stop() {
      stopped = true;
      if (controller) controller.abort();
    },
  };
}
