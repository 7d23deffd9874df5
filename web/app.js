// The Tidings web app: the reference client of docs/protocol.md, using only
// the public protocol (GraphQL over fetch, Socket.IO through the client
// library in clients/js). Everything a user typed or the server sent is put
// on the page with textContent, never as markup.

import { TidingsClient } from "/client/index.js";

const CREDENTIALS_KEY = "tidings.credentials";
const LAST_SEQ_KEY = "tidings.lastSeq";
const TYPING_SHOWN_MS = 3000;
const TYPING_EVERY_MS = 1500;

const $ = (id) => document.getElementById(id);

/** Builds an element; string children become text nodes, never markup. */
function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  for (const child of children) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function notice(text) {
  const item = el("li", {}, text);
  $("notices").append(item);
  setTimeout(() => item.remove(), 6000);
}

const state = {
  credentials: null, // { id, secretkey, username }
  client: null,
  users: new Map(), // id -> { id, username, online }
  following: new Set(),
  followers: new Set(),
  chats: new Map(), // id -> { id, title, direct, memberIds, lastMessageId, unread, offlineNote }
  openChatId: null,
  shown: new Set(), // message ids on screen
  connectedBefore: false,
  typingTimer: null,
  lastTypingSent: 0,
};

// ---- GraphQL ----------------------------------------------------------

async function gql(query, variables = {}) {
  const headers = { "content-type": "application/json" };
  if (state.credentials) {
    const { id, secretkey } = state.credentials;
    headers.authorization = `Basic ${btoa(`${id}:${secretkey}`)}`;
  }
  const response = await fetch("/graphql", {
    method: "POST",
    headers,
    body: JSON.stringify({ query, variables }),
  });
  const body = await response.json();
  if (body.errors?.length) throw new Error(body.errors[0].message);
  return body.data;
}

const USER_FIELDS = "id username online";

function remember(user) {
  const known = state.users.get(user.id) ?? {};
  const merged = { ...known, ...user };
  state.users.set(user.id, merged);
  return merged;
}

// ---- signing in and out ----------------------------------------------

async function signUp(username) {
  const data = await gql(
    "mutation($u: String!) { signUp(username: $u) { id username secretkey } }",
    { u: username },
  );
  return data.signUp;
}

async function start(credentials) {
  state.credentials = credentials;
  const me = (await gql("{ me { id username } }")).me;
  state.credentials.username = me.username;
  localStorage.setItem(CREDENTIALS_KEY, JSON.stringify(state.credentials));
  $("whoami").textContent = `${me.username}`;
  $("whoami").title = `id ${me.id}`;
  $("signed-out").hidden = true;
  $("signed-in").hidden = false;
  $("sign-out").hidden = false;
  await Promise.all([loadPeople(), loadChats()]);
  connectSocket();
}

function signOut() {
  state.client?.close();
  localStorage.removeItem(CREDENTIALS_KEY);
  localStorage.removeItem(LAST_SEQ_KEY);
  location.reload();
}

// ---- the socket -------------------------------------------------------

function connectSocket() {
  const since = Number(localStorage.getItem(LAST_SEQ_KEY));
  const client = new TidingsClient({
    io: window.io,
    credentials: state.credentials,
    since: Number.isSafeInteger(since) && since > 0 ? since : undefined,
  });
  state.client = client;
  const socket = client.socket;

  socket.on("connect", () => {
    showConnection(true, socket.io.engine?.transport?.name);
    socket.io.engine?.once("upgrade", (transport) => showConnection(true, transport.name));
  });
  socket.on("disconnect", () => showConnection(false));

  client.on("auth", async (ok) => {
    if (!ok) {
      notice("The server refused these credentials.");
      return;
    }
    const reconnect = state.connectedBefore;
    state.connectedBefore = true;
    if (state.openChatId) await joinChatRoom(state.openChatId);
    if (reconnect) await catchUp();
  });
  client.on("Followed", (event, meta) => {
    seen(meta);
    remember({ id: event.followerId, username: event.followerUsername });
    if (event.following) state.followers.add(event.followerId);
    else state.followers.delete(event.followerId);
    notice(`${event.followerUsername} ${event.following ? "followed" : "unfollowed"} you`);
    renderPeople();
  });
  client.on("presence", (event) => {
    remember({ id: event.userId, online: event.online });
    renderPeople();
  });
  client.on("chatroom", (event, meta) => {
    seen(meta);
    receiveMessage(event.message, { missed: meta?.replayed === true });
  });
  client.on("updatedChat", async (event, meta) => {
    seen(meta);
    if (!state.chats.has(event.chatroomId)) await loadChats();
    const chat = state.chats.get(event.chatroomId);
    if (chat && event.lastMessage) chat.lastMessageId = event.lastMessage.id;
    renderChats();
  });
  client.on("typing", (event) => showTyping(event));
  client.on("resync", () => catchUp());
  client.on("error", (event) => console.warn("tidings:", event?.error));
}

function seen(meta) {
  if (meta) localStorage.setItem(LAST_SEQ_KEY, String(meta.seq));
}

function showConnection(online, transport) {
  const status = $("connection");
  status.className = `status ${online ? "online" : "offline"}`;
  status.dataset.state = online ? "online" : "offline";
  status.dataset.transport = transport ?? "";
  status.textContent = online ? `online (${transport ?? "?"})` : "offline";
}

/** After a reconnect: fetch what the socket could not hear while it was down. */
async function catchUp() {
  const before = new Map([...state.chats].map(([id, chat]) => [id, chat.lastMessageId]));
  await Promise.all([loadPeople(), loadChats()]);
  for (const [id, chat] of state.chats) {
    if (id !== state.openChatId && chat.lastMessageId && chat.lastMessageId !== before.get(id)) {
      chat.offlineNote = true;
    }
  }
  renderChats();
  if (state.openChatId) {
    const messages = await fetchMessages(state.openChatId);
    for (const message of messages) receiveMessage(message, { missed: true });
  }
}

// ---- people -------------------------------------------------------------

async function loadPeople() {
  const me = state.credentials.id;
  const data = await gql(
    `query($me: ID!) { following(userId: $me) { ${USER_FIELDS} } followers(userId: $me) { ${USER_FIELDS} } }`,
    { me },
  );
  state.following = new Set(data.following.map((user) => remember(user).id));
  state.followers = new Set(data.followers.map((user) => remember(user).id));
  renderPeople();
}

async function search(text) {
  const data = await gql(`query($s: String) { users(search: $s) { ${USER_FIELDS} } }`, { s: text });
  const results = data.users.filter((user) => user.id !== state.credentials.id);
  $("search-results").replaceChildren(...results.map((user) => personItem(remember(user))));
}

async function toggleFollow(userId) {
  const data = await gql(
    `mutation($u: ID!) { followUnfollowUser(userId: $u) { following user { ${USER_FIELDS} } } }`,
    { u: userId },
  );
  const { following, user } = data.followUnfollowUser;
  remember(user);
  if (following) state.following.add(user.id);
  else state.following.delete(user.id);
  renderPeople();
}

function personItem(user) {
  const following = state.following.has(user.id);
  return el(
    "li",
    { dataset: { userId: user.id } },
    el("span", { className: `dot${user.online ? " online" : ""}`, title: user.online ? "online" : "offline" }),
    el("span", { className: "name" }, user.username ?? user.id),
    el("button", { className: "follow", onclick: () => toggleFollow(user.id).catch(fail) },
      following ? "Unfollow" : "Follow"),
    el("button", { className: "chat", onclick: () => openDirect(user.id).catch(fail) }, "Chat"),
  );
}

function renderPeople() {
  const list = (ids) => [...ids].map((id) => state.users.get(id)).filter(Boolean)
    .sort((a, b) => (a.username ?? "").localeCompare(b.username ?? ""));
  $("following").replaceChildren(...list(state.following).map(personItem));
  $("followers").replaceChildren(...list(state.followers).map(personItem));
  for (const item of $("search-results").children) {
    const user = state.users.get(item.dataset.userId);
    if (user) item.replaceWith(personItem(user));
  }
}

// ---- chats --------------------------------------------------------------

async function loadChats() {
  const data = await gql(
    `{ chatrooms { id name direct memberIds members { ${USER_FIELDS} } lastMessage { id } } }`,
  );
  const previous = state.chats;
  state.chats = new Map();
  for (const room of data.chatrooms) {
    const others = room.members.filter((m) => m.id !== state.credentials.id).map(remember);
    const title = room.direct
      ? others[0]?.username ?? "(someone who left)"
      : room.name ?? others.map((m) => m.username).join(", ");
    const old = previous.get(room.id);
    state.chats.set(room.id, {
      id: room.id,
      title,
      direct: room.direct,
      memberIds: room.memberIds,
      lastMessageId: room.lastMessage?.id ?? null,
      unread: old?.unread ?? 0,
      offlineNote: old?.offlineNote ?? false,
    });
  }
  renderChats();
}

function renderChats() {
  $("chats").replaceChildren(...[...state.chats.values()].map((chat) => el(
    "li",
    { dataset: { chatId: chat.id }, className: chat.id === state.openChatId ? "active" : "" },
    el("span", { className: "name" }, `${chat.direct ? "" : "# "}${chat.title}`),
    chat.unread ? el("span", { className: "badge" }, String(chat.unread)) : null,
    chat.offlineNote ? el("span", { className: "badge offline-note" }, "new while offline") : null,
    el("button", { onclick: () => openChat(chat.id).catch(fail) }, "Open"),
  )));
}

async function openDirect(userId) {
  const data = await gql("mutation($u: ID!) { getLocation(userId: $u) { id } }", { u: userId });
  await loadChats();
  await openChat(data.getLocation.id);
}

async function createGroup(name) {
  const memberIds = [...state.following];
  const data = await gql(
    "mutation($n: String!, $m: [ID!]!) { createChatroom(name: $n, memberIds: $m) { id } }",
    { n: name, m: memberIds },
  );
  await loadChats();
  await openChat(data.createChatroom.id);
}

async function joinChatRoom(chatId) {
  const answer = await state.client?.request("joinRoom", `chatroom:${chatId}`).catch(() => null);
  if (answer?.error) console.warn("joinRoom:", answer.error);
}

async function fetchMessages(chatId) {
  const data = await gql(
    "query($c: ID!) { messages(chatroomId: $c, last: 50) { id chatroomId senderId senderUsername content createdAt } }",
    { c: chatId },
  );
  return data.messages;
}

async function openChat(chatId) {
  const previous = state.openChatId;
  if (previous && previous !== chatId) {
    state.client?.request("leaveRoom", `chatroom:${previous}`).catch(() => null);
  }
  state.openChatId = chatId;
  const chat = state.chats.get(chatId);
  if (chat) Object.assign(chat, { unread: 0, offlineNote: false });
  $("chat-title").textContent = chat ? chat.title : "Chat";
  $("chat").dataset.chatId = chatId;
  $("messages").replaceChildren();
  $("typing").textContent = "";
  state.shown.clear();
  $("message-form").hidden = false;
  renderChats();
  await joinChatRoom(chatId);
  for (const message of await fetchMessages(chatId)) receiveMessage(message, { missed: false });
  $("message-input").focus();
}

function receiveMessage(message, { missed }) {
  const chat = state.chats.get(message.chatroomId);
  if (message.chatroomId !== state.openChatId) {
    if (chat && !state.shown.has(message.id)) chat.unread += 1;
    renderChats();
    return;
  }
  if (state.shown.has(message.id)) return;
  state.shown.add(message.id);
  const mine = message.senderId === state.credentials.id;
  const item = el(
    "li",
    { dataset: { messageId: message.id }, className: `${mine ? "mine" : ""}${missed ? " missed" : ""}`,
      title: new Date(message.createdAt).toLocaleString() },
    el("span", { className: "from" }, message.senderUsername),
    el("span", { className: "content" }, message.content),
    missed ? el("span", { className: "tag" }, "arrived while you were offline") : null,
  );
  // Keep the list in id order (UUIDv7: creation order), whatever arrived first.
  const after = [...$("messages").children].find((li) => li.dataset.messageId > message.id);
  $("messages").insertBefore(item, after ?? null);
  if (!mine) $("typing").textContent = "";
  item.scrollIntoView({ block: "nearest" });
}

async function send(text) {
  await gql(
    "mutation($c: ID!, $t: String!) { sendMessage(chatroomId: $c, content: $t) { id } }",
    { c: state.openChatId, t: text },
  );
}

function typed() {
  const now = Date.now();
  if (!state.openChatId || now - state.lastTypingSent < TYPING_EVERY_MS) return;
  state.lastTypingSent = now;
  state.client?.request("typing", { chatroomId: state.openChatId }).catch(() => null);
}

function showTyping(event) {
  if (event.chatroomId !== state.openChatId || event.userId === state.credentials.id) return;
  const name = state.users.get(event.userId)?.username ?? "someone";
  $("typing").textContent = `${name} is typing…`;
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(() => { $("typing").textContent = ""; }, TYPING_SHOWN_MS);
}

function fail(err) {
  notice(err.message ?? String(err));
}

// ---- wiring -------------------------------------------------------------

$("sign-up-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-error").textContent = "";
  try {
    const user = await signUp($("sign-up-username").value.trim());
    await start({ id: user.id, secretkey: user.secretkey });
    notice(`Signed up. Your secret is stored in this browser only.`);
  } catch (err) {
    $("sign-error").textContent = err.message;
  }
});
$("sign-in-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("sign-error").textContent = "";
  try {
    await start({ id: $("sign-in-id").value.trim(), secretkey: $("sign-in-secret").value });
  } catch (err) {
    state.credentials = null;
    $("sign-error").textContent = err.message;
  }
});
$("search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  search($("search").value.trim()).catch(fail);
});
$("group-form").addEventListener("submit", (event) => {
  event.preventDefault();
  createGroup($("group-name").value.trim()).catch(fail);
});
$("message-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const text = $("message-input").value;
  if (!text.trim()) return;
  $("message-input").value = "";
  send(text).catch(fail);
});
$("message-input").addEventListener("input", typed);
$("sign-out").addEventListener("click", signOut);

// For the developer console (and the browser tests, which use it to cut the
// connection): the app's state, socket included.
window.tidings = state;

const stored = localStorage.getItem(CREDENTIALS_KEY);
if (stored) {
  try {
    await start(JSON.parse(stored));
  } catch (err) {
    localStorage.removeItem(CREDENTIALS_KEY);
    $("sign-error").textContent = `Stored credentials no longer work: ${err.message}`;
    state.credentials = null;
  }
}
