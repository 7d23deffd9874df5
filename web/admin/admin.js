// The operator view: polls /admin/api/stats every 2 s with the API key as a
// Bearer header (kept in sessionStorage: this tab only, never a cookie).
// Everything shown is put on the page as text.

const KEY = "tidings.adminKey";
const EVERY_MS = 2000;
const HISTORY = 150; // points: five minutes at one per 2 s

const $ = (id) => document.getElementById(id);
const history = { connections: [], pushes: [] };
let previous = null; // last answer, for per-second rates
let timer = null;

function cell(text, col) {
  const td = document.createElement("td");
  td.textContent = String(text);
  if (col) td.dataset.col = col;
  return td;
}

// The durable log (docs/protocol.md §9): pushes written to it, pushes that
// could not be (Redis down: delivered live without a seq), pushes resent
// on resume, and resyncs (asked further back than the log holds).
const LOG_FIELDS = ["logged", "notLogged", "replayed", "resyncs"];
const logText = (log) => LOG_FIELDS.map((f) => log?.[f] ?? 0).join(" / ");

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}` },
  });
  if (response.status === 401) throw Object.assign(new Error("wrong API key"), { unauthorized: true });
  const body = await response.json();
  if (!response.ok) throw new Error(body.error ?? `HTTP ${response.status}`);
  return body;
}

const sum = (values) => values.reduce((a, b) => a + b, 0);
const pushTotal = (node) => sum(Object.values(node.pushes ?? {}));

function rate(node) {
  const before = previous?.nodes.find((n) => n.nodeId === node.nodeId);
  if (!before || node.at <= before.at) return 0;
  return (pushTotal(node) - pushTotal(before)) / ((node.at - before.at) / 1000);
}

function render(stats) {
  const rows = stats.nodes.map((node) => {
    const tr = document.createElement("tr");
    tr.dataset.nodeId = node.nodeId;
    const latency = node.pushLatency.count
      ? (node.pushLatency.sumMicros / node.pushLatency.count / 1000).toFixed(2) : "–";
    const auth = node.auth;
    tr.append(
      cell(`${node.nodeId.slice(-8)}${node.nodeId === stats.node.nodeId ? " (this)" : ""}`),
      cell(node.connections.polling), cell(node.connections.websocket),
      cell(node.authenticatedSockets), cell(node.onlineUsers), cell(node.rooms),
      cell(rate(node).toFixed(1)), cell(latency),
      cell(`${auth.ok} / ${auth.wrong} / ${auth.unavailable}`),
      cell(node.rateLimited), cell(node.originRefused ?? 0, "origin-refused"),
      cell(logText(node.log), "log"), cell(node.database), cell(node.redis),
    );
    return tr;
  });
  const total = document.createElement("tr");
  total.className = "total";
  const all = stats.nodes;
  const field = (f) => sum(all.map(f));
  total.append(
    cell("cluster"), cell(field((n) => n.connections.polling)), cell(field((n) => n.connections.websocket)),
    cell(field((n) => n.authenticatedSockets)), cell(field((n) => n.onlineUsers)), cell(field((n) => n.rooms)),
    cell(field(rate).toFixed(1)), cell(""), cell(`${field((n) => n.auth.ok)} / ${field((n) => n.auth.wrong)} / ${field((n) => n.auth.unavailable)}`),
    cell(field((n) => n.rateLimited)), cell(field((n) => n.originRefused ?? 0), "origin-refused"),
    cell(LOG_FIELDS.map((f) => field((n) => n.log?.[f] ?? 0)).join(" / "), "log"), cell(""), cell(""),
  );
  $("cluster").tBodies[0].replaceChildren(...rows, total);
  $("push-kinds").replaceChildren(...Object.entries(stats.node.pushes).map(([kind, count]) => {
    const li = document.createElement("li");
    li.dataset.kind = kind;
    li.textContent = `${kind}: ${count}`;
    return li;
  }));
  remember(history.connections, field((n) => n.connections.polling + n.connections.websocket));
  remember(history.pushes, field(rate));
  chart($("chart-connections"), history.connections);
  chart($("chart-pushes"), history.pushes);
  previous = stats;
  $("refreshed").textContent = `updated ${new Date().toLocaleTimeString()}`;
}

function remember(series, value) {
  series.push(value);
  if (series.length > HISTORY) series.shift();
}

function chart(canvas, series) {
  const ctx = canvas.getContext("2d");
  const { width, height } = canvas;
  ctx.clearRect(0, 0, width, height);
  const max = Math.max(1, ...series);
  ctx.strokeStyle = "#2a6ee8";
  ctx.lineWidth = 2;
  ctx.beginPath();
  series.forEach((value, i) => {
    const x = (i / (HISTORY - 1)) * width;
    const y = height - (value / max) * (height - 14) - 2;
    if (i === 0) ctx.moveTo(x, y); else ctx.lineTo(x, y);
  });
  ctx.stroke();
  ctx.fillStyle = "#1d2433";
  ctx.fillText(`max ${max.toFixed(1)}`, 4, 10);
}

async function poll() {
  try {
    render(await api("/admin/api/stats"));
  } catch (err) {
    if (err.unauthorized) return signOut(err.message);
    $("refreshed").textContent = `refresh failed: ${err.message}`;
  }
}

function signedIn() {
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").hidden = false;
  poll();
  timer = setInterval(poll, EVERY_MS);
}

function signOut(reason = "") {
  clearInterval(timer);
  sessionStorage.removeItem(KEY);
  $("signed-in").hidden = true;
  $("signed-out").hidden = false;
  $("sign-out").hidden = true;
  $("key-error").textContent = reason;
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY, $("key").value);
  $("key").value = "";
  $("key-error").textContent = "";
  signedIn();
});
$("sign-out").addEventListener("click", () => signOut());
$("disconnect-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("disconnect-user").value.trim();
  try {
    await api(`/admin/api/users/${encodeURIComponent(user)}/disconnect`, { method: "POST" });
    $("action-result").textContent = `disconnected every socket of ${user}`;
  } catch (err) {
    $("action-result").textContent = `refused: ${err.message}`;
  }
});

$("sockets-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("sockets-user").value.trim();
  try {
    const answer = await api(`/admin/api/users/${encodeURIComponent(user)}/sockets`);
    const items = answer.sockets.map((s) => {
      const li = document.createElement("li");
      li.textContent = `socket ${s.socketId} on server ${s.serverId}`;
      return li;
    });
    if (items.length === 0) {
      const li = document.createElement("li");
      li.textContent = "no sockets";
      items.push(li);
    }
    $("sockets").replaceChildren(...items);
  } catch (err) {
    const li = document.createElement("li");
    li.textContent = `refused: ${err.message}`;
    $("sockets").replaceChildren(li);
  }
});

if (sessionStorage.getItem(KEY)) signedIn();
