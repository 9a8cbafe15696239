// Tidings dashboard: plain script, no dependencies. Everything shown comes from the read API
// with the environment's key; text from requests (recipients, ids, provider events) is
// attacker-controlled, so it is only ever inserted with textContent.
"use strict";

const state = { env: "", key: "", integrations: [], stream: null, lastId: null };
const FEED_ROWS = 200;

function el(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (className) node.className = className;
  return node;
}

function setStatus(text) {
  document.getElementById("status").textContent = text;
}

function base() {
  return "/v1/environments/" + encodeURIComponent(state.env);
}

async function api(path) {
  const response = await fetch(base() + path, {
    headers: { Authorization: "ApiKey " + state.key },
    cache: "no-store",
  });
  if (response.status === 401) throw new Error("The key was refused for this environment.");
  if (!response.ok) {
    let message = response.statusText;
    try { message = (await response.json()).message || message; } catch (_) { /* not JSON */ }
    throw new Error(response.status + ": " + message);
  }
  return response.json();
}

function when(text) {
  if (!text) return "";
  const date = new Date(text);
  return isNaN(date) ? text : date.toLocaleString();
}

// Integrations and rates.

async function loadIntegrations() {
  const answer = await api("/integrations");
  state.integrations = answer.data || [];
  const body = document.querySelector("#integrations tbody");
  body.replaceChildren();
  for (const i of state.integrations) {
    const row = el("tr");
    row.append(el("td", i.id), el("td", i.provider));
    const shown = { ok: "✓ ok", quiet: "⚠ quiet", failing: "✗ failing" }[i.state] || i.state;
    row.append(el("td", shown, "state-" + i.state));
    row.append(el("td", i.lastEventAt ? when(i.lastEventAt) : "none in the last day"));
    row.append(el("td", i.lastHour.events), el("td", i.lastDay.events));
    row.append(el("td", i.lastDay.duplicates === undefined ? "" : i.lastDay.duplicates));
    row.append(el("td", i.refusedLastHour ? i.refusedLastHour.requests : 0));
    body.append(row);
  }
  drawRates();
  await loadRejections();
}

async function loadRejections() {
  const answer = await api("/rejections?limit=50");
  const body = document.querySelector("#rejections tbody");
  body.replaceChildren();
  for (const r of answer.data || []) {
    const row = el("tr");
    row.append(el("td", when(r.at)), el("td", r.integration), el("td", r.reason, "reason"));
    row.append(el("td", r.hint, "hint"));
    const request = el("td");
    const details = el("details");
    details.append(el("summary", r.request.method + " " + r.request.path));
    details.append(el("pre", JSON.stringify(r.request.headers, null, 2)));
    if (r.request.body !== undefined) details.append(el("pre", r.request.body));
    request.append(details);
    row.append(request);
    body.append(row);
  }
  if (!body.children.length) {
    const row = el("tr");
    const cell = el("td", "None recorded.", "hint");
    cell.colSpan = 5;
    row.append(cell);
    body.append(row);
  }
}

function drawRates() {
  const windowName = document.getElementById("window").value;
  const byProvider = new Map();
  for (const i of state.integrations) {
    const counts = i[windowName];
    const sums = byProvider.get(i.provider) || { events: 0, statuses: {} };
    sums.events += counts.events;
    for (const [status, n] of Object.entries(counts.statuses)) {
      sums.statuses[status] = (sums.statuses[status] || 0) + n;
    }
    byProvider.set(i.provider, sums);
  }
  const target = document.getElementById("rates");
  target.replaceChildren();
  for (const [provider, sums] of byProvider) {
    const box = el("div", null, "provider");
    box.append(el("h3", provider + " (" + sums.events + " events)"));
    if (sums.events === 0) box.append(el("p", "No events in this window.", "hint"));
    for (const [status, n] of Object.entries(sums.statuses).sort((a, b) => b[1] - a[1])) {
      const share = (100 * n) / sums.events;
      const line = el("div", null, "rate");
      const bar = el("div", null, "bar");
      const fill = el("div", null, "fill");
      fill.style.width = share.toFixed(1) + "%";
      bar.append(fill);
      bar.setAttribute("role", "img");
      bar.setAttribute("aria-label", status + " " + share.toFixed(1) + "%");
      line.append(el("span", status, "status-" + status), bar, el("span", share.toFixed(1) + "% (" + n + ")"));
      box.append(line);
    }
    target.append(box);
  }
}

// Live events: the SSE stream read with fetch, since EventSource cannot send the key.

function addEvent(event) {
  const body = document.querySelector("#feed tbody");
  const row = el("tr");
  row.append(el("td", when(event.receivedAt)), el("td", event.integration));
  row.append(el("td", event.status, "status-" + event.status));
  row.append(el("td", event.recipient || "", "wrap"), el("td", event.id, "wrap"));
  row.append(el("td", event.providerEvent, "wrap"));
  body.prepend(row);
  while (body.rows.length > FEED_ROWS) body.deleteRow(body.rows.length - 1);
}

function parseBlock(block) {
  let id = null;
  const data = [];
  for (const line of block.split("\n")) {
    if (line.startsWith("id:")) id = line.slice(3).trim();
    else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
  }
  if (id) state.lastId = id;
  if (data.length) addEvent(JSON.parse(data.join("\n")));
}

async function follow(controller) {
  const feedState = document.getElementById("feed-state");
  while (!controller.signal.aborted) {
    try {
      const after = state.lastId || "latest";
      const response = await fetch(base() + "/events/stream?after=" + encodeURIComponent(after), {
        headers: { Authorization: "ApiKey " + state.key },
        signal: controller.signal,
      });
      if (!response.ok) throw new Error("the stream answered " + response.status);
      feedState.textContent = "Live: new events appear at the top.";
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          parseBlock(buffer.slice(0, end));
          buffer = buffer.slice(end + 2);
        }
      }
    } catch (error) {
      if (controller.signal.aborted) return;
      feedState.textContent = "Stream interrupted (" + error.message + "); reconnecting.";
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

// Message lookup.

async function lookup(id) {
  const target = document.getElementById("message");
  target.replaceChildren(el("p", "Looking up…", "hint"));
  const found = (await api("/messages?id=" + encodeURIComponent(id))).data || [];
  target.replaceChildren();
  if (found.length === 0) target.append(el("p", "No message with that id.", "hint"));
  for (const summary of found) {
    const message = await api(
      "/integrations/" + encodeURIComponent(summary.integration) + "/messages/" + encodeURIComponent(summary.id)
    );
    const box = el("div", null, "provider");
    box.append(el("h3", message.integration + " · " + message.id));
    const status = el("p");
    status.append("Status: ", el("strong", message.status, "status-" + message.status), " since " + when(message.statusAt));
    box.append(status);
    if (message.flags.length) box.append(el("p", "Also: " + message.flags.join(", ")));
    const list = el("ol", null, "timeline");
    for (const event of message.timeline || []) {
      const item = el("li");
      item.append(el("span", when(event.date) + " "), el("strong", event.status, "status-" + event.status));
      item.append(el("span", " (" + event.providerEvent + ")"));
      if (event.response) item.append(el("div", event.response, "hint"));
      list.append(item);
    }
    box.append(list);
    target.append(box);
  }
}

// Connecting.

async function connect() {
  if (state.stream) state.stream.abort();
  state.lastId = null;
  document.querySelector("#feed tbody").replaceChildren();
  try {
    await loadIntegrations();
  } catch (error) {
    setStatus(error.message);
    return;
  }
  setStatus("Connected to environment " + state.env + ".");
  state.stream = new AbortController();
  follow(state.stream);
}

function remembered() {
  const fragment = new URLSearchParams(location.hash.slice(1));
  if (fragment.get("key")) {
    sessionStorage.setItem("tidings.env", fragment.get("env") || "dev");
    sessionStorage.setItem("tidings.key", fragment.get("key"));
    // The key leaves the address bar (and the history) once read.
    history.replaceState(null, "", location.pathname);
  }
  state.env = sessionStorage.getItem("tidings.env") || "";
  state.key = sessionStorage.getItem("tidings.key") || "";
}

document.addEventListener("DOMContentLoaded", () => {
  remembered();
  document.getElementById("env").value = state.env;
  document.getElementById("connect").addEventListener("submit", (e) => {
    e.preventDefault();
    state.env = document.getElementById("env").value.trim();
    state.key = document.getElementById("key").value;
    sessionStorage.setItem("tidings.env", state.env);
    sessionStorage.setItem("tidings.key", state.key);
    document.getElementById("key").value = "";
    connect();
  });
  document.getElementById("forget").addEventListener("click", () => {
    sessionStorage.removeItem("tidings.key");
    state.key = "";
    if (state.stream) state.stream.abort();
    setStatus("Key forgotten.");
  });
  document.getElementById("window").addEventListener("change", drawRates);
  document.getElementById("lookup").addEventListener("submit", (e) => {
    e.preventDefault();
    lookup(document.getElementById("message-id").value.trim()).catch((error) => setStatus(error.message));
  });
  setInterval(() => {
    if (state.key) loadIntegrations().catch((error) => setStatus(error.message));
  }, 15000);
  if (state.env && state.key) connect();
});
