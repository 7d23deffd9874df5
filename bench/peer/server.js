// The benchmark's peer: what a typical team would write with Node.js and
// socket.io@4 to do what Tidings does in the benchmark scenarios. Not a
// complete implementation of docs/protocol.md — only what the bench uses:
//
// - `initialConnection` {id, secretkey}: looks the user up in the same
//   `users` table (PostgreSQL via `pg`) and runs argon2.verify EVERY time
//   (no cache), then joins `user:<id>`, stores socket_id/last_seen_at,
//   emits `auth` and acks true/false.
// - `joinRoom` "topic:<name>" (or {room}): authenticated sockets only.
// - POST /graphql, hand-parsed (no GraphQL library): only the two operations
//   the bench sends, recognised by name in the query text, arguments taken
//   from the variables they are bound to: `getLocation(userId: $x)` and
//   `sendMessage(chatroomId: $c, content: $t)`. Basic credentials are
//   verified with argon2 once per id:secret and then cached in memory (so
//   push latency measures the push path, as Tidings also caches).
//   Content is stored as sent (no HTML cleaning, which Tidings does).
// - POST /api/push {users?, rooms, event, data} with a Bearer key.
// - GET /readyz.
//
// Env: PORT, DATABASE_URL (postgres://…), API_KEY.
"use strict";

const http = require("node:http");
const crypto = require("node:crypto");
const argon2 = require("argon2");
const { Pool } = require("pg");
const { Server } = require("socket.io");

const port = Number(process.env.PORT || 4100);
const apiKey = process.env.API_KEY || "";
const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 10 });
const UUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const TOPIC = /^topic:[a-z0-9_\-./]{1,64}$/;

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req, limit = 1 << 20) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error("too large"));
        req.destroy();
      } else chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

// --- credentials --------------------------------------------------------

async function verifyUser(id, secret) {
  if (typeof id !== "string" || !UUID.test(id) || typeof secret !== "string") return null;
  const { rows } = await pool.query("SELECT id, username, secret_hash FROM users WHERE id = $1", [id]);
  if (rows.length === 0) return null;
  return (await argon2.verify(rows[0].secret_hash, secret)) ? { id: rows[0].id, username: rows[0].username } : null;
}

const basicCache = new Map();
async function basicUser(header) {
  if (!header || !header.startsWith("Basic ")) return null;
  const hit = basicCache.get(header);
  if (hit) return hit;
  const decoded = Buffer.from(header.slice(6), "base64").toString("utf8");
  const colon = decoded.indexOf(":");
  if (colon < 0) return null;
  const user = await verifyUser(decoded.slice(0, colon), decoded.slice(colon + 1));
  if (user) basicCache.set(header, user);
  return user;
}

// --- GraphQL (two operations, hand-parsed) -------------------------------

function argVar(query, op, arg, variables) {
  const m = new RegExp(`${op}\\([^)]*${arg}:\\s*\\$(\\w+)`).exec(query);
  return m ? variables[m[1]] : undefined;
}

function gqlError(message, code) {
  return { data: null, errors: [{ message, extensions: { code } }] };
}

async function getLocation(user, otherId) {
  if (typeof otherId !== "string" || !UUID.test(otherId)) return gqlError("userId must be a UUID", "BAD_USER_INPUT");
  if (otherId === user.id) return gqlError("a direct chatroom needs another user", "BAD_USER_INPUT");
  const [lo, hi] = user.id < otherId ? [user.id, otherId] : [otherId, user.id];
  const key = `${lo}:${hi}`;
  const found = await pool.query("SELECT id FROM chatrooms WHERE direct_key = $1", [key]);
  if (found.rows.length) return { data: { getLocation: { id: found.rows[0].id } } };
  const other = await pool.query("SELECT id FROM users WHERE id = $1", [otherId]);
  if (!other.rows.length) return gqlError("user not found", "NOT_FOUND");
  const id = crypto.randomUUID();
  const now = Date.now();
  const client = await pool.connect();
  try {
    await client.query("BEGIN");
    await client.query(
      "INSERT INTO chatrooms (id, name, direct_key, created_at, updated_at) VALUES ($1, NULL, $2, $3, $3)",
      [id, key, now],
    );
    await client.query(
      "INSERT INTO chatroom_members (chatroom_id, user_id, joined_at) VALUES ($1, $2, $4), ($1, $3, $4)",
      [id, user.id, otherId, now],
    );
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK");
    throw e;
  } finally {
    client.release();
  }
  const chat = { id, direct: true, memberIds: [user.id, otherId], lastMessage: null, updatedAt: now };
  io.to(`user:${user.id}`).to(`user:${otherId}`).emit("updatedChat", chat);
  return { data: { getLocation: { id } } };
}

async function sendMessage(user, chatroomId, content) {
  if (typeof chatroomId !== "string" || !UUID.test(chatroomId)) return gqlError("chatroomId must be a UUID", "BAD_USER_INPUT");
  const members = (await pool.query("SELECT user_id FROM chatroom_members WHERE chatroom_id = $1", [chatroomId])).rows.map(
    (r) => r.user_id,
  );
  if (!members.includes(user.id)) return gqlError("chatroom not found", "NOT_FOUND");
  if (typeof content !== "string" || content.length < 1 || content.length > 4000)
    return gqlError("content must be 1 to 4000 characters", "BAD_USER_INPUT");
  const message = {
    id: crypto.randomUUID(),
    chatroomId,
    senderId: user.id,
    senderUsername: user.username,
    content,
    createdAt: Date.now(),
  };
  await pool.query("INSERT INTO messages (id, chatroom_id, sender_id, content, created_at) VALUES ($1, $2, $3, $4, $5)", [
    message.id,
    chatroomId,
    user.id,
    content,
    message.createdAt,
  ]);
  await pool.query("UPDATE chatrooms SET updated_at = $2 WHERE id = $1", [chatroomId, message.createdAt]);
  const rooms = members.map((m) => `user:${m}`);
  io.to(rooms).emit("chatroom", { chatroomId, message });
  io.to(rooms).emit("updatedChat", { id: chatroomId, memberIds: members, lastMessage: message, updatedAt: message.createdAt });
  return { data: { sendMessage: message } };
}

async function graphql(req, res) {
  let body;
  try {
    body = JSON.parse(await readBody(req, 262144));
  } catch {
    return send(res, 400, gqlError("invalid JSON body", "BAD_REQUEST"));
  }
  const query = String(body.query || "");
  const variables = body.variables || {};
  const user = await basicUser(req.headers.authorization);
  if (!user) return send(res, 200, gqlError("not authenticated", "UNAUTHENTICATED"));
  if (query.includes("getLocation")) return send(res, 200, await getLocation(user, argVar(query, "getLocation", "userId", variables)));
  if (query.includes("sendMessage"))
    return send(
      res,
      200,
      await sendMessage(user, argVar(query, "sendMessage", "chatroomId", variables), argVar(query, "sendMessage", "content", variables)),
    );
  return send(res, 200, gqlError("this peer only handles getLocation and sendMessage", "BAD_REQUEST"));
}

// --- POST /api/push ------------------------------------------------------

async function apiPush(req, res) {
  if (!apiKey || req.headers.authorization !== `Bearer ${apiKey}`) return send(res, 401, { error: "missing or wrong API key" });
  let body;
  try {
    body = JSON.parse(await readBody(req));
  } catch {
    return send(res, 400, { error: "not JSON" });
  }
  const users = Array.isArray(body.users) ? body.users : [];
  const rooms = Array.isArray(body.rooms) ? body.rooms : [];
  if (!("data" in body) || users.length + rooms.length === 0) return send(res, 400, { error: "data and a target are required" });
  const event = typeof body.event === "string" ? body.event : "push";
  const targets = [...users.map((u) => `user:${u}`), ...rooms];
  io.to(targets).emit(event, body.data);
  return send(res, 202, { accepted: { users: users.length, rooms: rooms.length, event }, unknownUsers: [] });
}

// --- server --------------------------------------------------------------

const httpServer = http.createServer((req, res) => {
  const path = req.url.split("?")[0];
  let handler;
  if (req.method === "GET" && path === "/readyz") return send(res, 200, { ready: true });
  if (req.method === "POST" && path === "/graphql") handler = graphql;
  else if (req.method === "POST" && path === "/api/push") handler = apiPush;
  else return send(res, 404, { error: "not found" });
  handler(req, res).catch((e) => {
    console.error(e);
    if (!res.headersSent) send(res, 500, { error: "internal error" });
  });
});

const io = new Server(httpServer, { serveClient: false });

io.on("connection", (socket) => {
  socket.on("initialConnection", async (creds, ack) => {
    let ok = false;
    try {
      if (socket.data.userId) {
        socket.leave(`user:${socket.data.userId}`);
        socket.data.userId = undefined;
      }
      const user = creds && typeof creds === "object" ? await verifyUser(creds.id, creds.secretkey) : null;
      if (user) {
        await pool.query("UPDATE users SET socket_id = $2, last_seen_at = $3 WHERE id = $1", [user.id, socket.id, Date.now()]);
        socket.data.userId = user.id;
        socket.join(`user:${user.id}`);
        ok = true;
      }
    } catch (e) {
      console.error(e);
      socket.emit("error", { error: "authentication is unavailable, try again later" });
    }
    socket.emit("auth", ok);
    if (typeof ack === "function") ack(ok);
  });

  socket.on("joinRoom", (payload, ack) => {
    const room = typeof payload === "string" ? payload : payload && payload.room;
    let answer;
    if (!socket.data.userId) answer = { error: "not authenticated" };
    else if (typeof room !== "string" || !TOPIC.test(room)) answer = { error: "only topic: rooms in this peer" };
    else {
      socket.join(room);
      answer = { ok: true };
    }
    if (answer.error) socket.emit("error", { error: `joinRoom: ${answer.error}` });
    if (typeof ack === "function") ack(answer);
  });

  socket.on("disconnect", () => {
    const id = socket.data.userId;
    if (id) pool.query("UPDATE users SET socket_id = NULL WHERE id = $1 AND socket_id = $2", [id, socket.id]).catch(() => {});
  });
});

httpServer.listen(port, "127.0.0.1", () => console.log(`peer listening on 127.0.0.1:${port}`));
