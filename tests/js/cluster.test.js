'use strict';
// Three tidings nodes (separate processes) sharing one PostgreSQL database
// and one Redis, behind nginx running the documented configuration
// (docs/deploy/nginx.conf). The clients are the real socket.io-client 4.x,
// 3.x and 2.x, each connecting from its own loopback source address, so
// that nginx's `hash $remote_addr consistent` spreads them over the nodes.
//
// Which node a socket is on is known twice over: nginx answers `/readyz`
// from a source address with the node that address hashes to, and the node
// that authenticated the socket logs it. The test checks that both agree,
// and, from nginx's access log, that every request of a session came from
// the socket's source address and went to that same node.
//
// Then what must act on every node, with one user's sockets spread over all
// three: rotateSecret, deleteAccount, isOnline asked of each node, and
// BackgroundPush messages published with redis-cli (the nodes' channel is
// `cluster.backgroundPushChannel`, fresh for the run).
//
// Needs nginx on PATH (scripts/test installs it), PostgreSQL
// (TIDINGS_TEST_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432/test;
// a fresh database is created and dropped) and Redis (TIDINGS_TEST_REDIS_URL,
// default redis://127.0.0.1:6379; a fresh key prefix keeps parallel runs
// apart).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const {
  TIMEOUT_MS,
  QUIET_MS,
  VERSIONS,
  TRANSPORTS,
  startCluster,
  signUp,
  follow,
  credentials,
  connect,
  transportName,
  upgraded,
  emitWithAck,
  disconnected,
  withSockets,
  graphql,
  httpRequest,
  waitFor,
  redisPublish,
  redisSubscribe,
  startNode,
  sendMessage,
} = require('./helpers');

const NODE_COUNT = 3;
/** Source addresses wanted per node (the last one is for the limit test). */
const ADDRESSES_PER_NODE = 3;
/** Failed authentications per client address (the X-Forwarded-For test). */
const MAX_FAILED_AUTH_PER_ADDRESS = 3;
/** The presence bound: a killed node's users are offline within it. */
const PRESENCE_TIMEOUT_MS = 3000;

let cluster = null; // startCluster()
let nodes = []; // startNode() handles, plus nodeId
let nginx = null;
let apiKey = null;
/** addresses[i]: source addresses that nginx sends to nodes[i]. */
let addresses = [];

/** nginx, as a "server" for the helpers (`url`). */
const balancer = () => ({ url: nginx.url });

before(async () => {
  apiKey = crypto.randomBytes(24).toString('hex');
  const env = {
    TIDINGS_API_KEY: apiKey,
    TIDINGS_MAX_FAILED_AUTH_PER_ADDRESS: String(MAX_FAILED_AUTH_PER_ADDRESS),
    TIDINGS_PRESENCE_TIMEOUT_MS: String(PRESENCE_TIMEOUT_MS),
  };
  // nodeOfSocket() reads the info line `socket authenticated`.
  if (process.env.RUST_LOG) env.RUST_LOG = `${process.env.RUST_LOG},tidings::gateway=info`;
  // Checks /readyz of every node (ready, joined through Redis, its own
  // node_id), then asks nginx's /readyz from 127.0.0.2, .3, … (the answer
  // names the node) until it has ADDRESSES_PER_NODE addresses per node.
  cluster = await startCluster({ nodeCount: NODE_COUNT, addressesPerNode: ADDRESSES_PER_NODE, env });
  ({ nodes, nginx } = cluster);
  addresses = cluster.addressesByNode;
});

after(async () => {
  if (cluster) await cluster.stop();
});

/** The index of the node that nginx sends `address`'s requests to. */
function nodeBehindNginxFrom(address) {
  return cluster.nodeBehind(address);
}

/**
 * The index of the node that authenticated `handle`'s socket, from the
 * nodes' logs (`socket authenticated` names the socket id).
 */
async function nodeOfSocket(handle) {
  const id = handle.socket.id;
  const holders = await waitFor(
    () => {
      const found = nodes
        .map((node, i) => ({ node, i }))
        .filter(({ node }) =>
          node
            .log()
            .split('\n')
            .some((line) => line.includes('socket authenticated') && line.includes(id)),
        );
      return found.length > 0 && found;
    },
    TIMEOUT_MS,
    () => `a node to log "socket authenticated" for socket ${id} (${handle.events.describe()})`,
  );
  assert.equal(holders.length, 1, `exactly one node authenticated socket ${id}`);
  return holders[0].i;
}

/**
 * After the socket closed: waits until nginx has logged the session's
 * requests (a WebSocket is logged when it closes), then checks that every
 * one of them came from `address` and went to node `nodeIndex`.
 */
async function assertStickySession(probe, address, nodeIndex, transports) {
  const mine = () => nginx.accessLog().filter((e) => e.uri.includes(`probe=${probe}`));
  const wanted = new Set(transports);
  const entries = await waitFor(
    () => {
      const seen = new Set(mine().map((e) => (/[?&]transport=(\w+)/.exec(e.uri) || [])[1]));
      return [...wanted].every((t) => seen.has(t)) && mine();
    },
    TIMEOUT_MS,
    () =>
      `nginx to log requests over ${transports.join(' and ')} with probe=${probe}; logged: ` +
      JSON.stringify(mine().map((e) => e.line)),
  );
  const upstream = `127.0.0.1:${nodes[nodeIndex].port}`;
  for (const e of entries) {
    assert.equal(e.remote, address, `request from the socket's source address: ${e.line}`);
    assert.equal(e.upstream, upstream, `request went to ${nodes[nodeIndex].name} (${upstream}): ${e.line}`);
    assert.ok(e.status < 400, `request succeeded: ${e.line}`);
  }
}

/** Connects through nginx from `address` and authenticates as `user`. */
async function connectAs(version, user, { transports, address, probe }) {
  const handle = await connect(version, balancer(), {
    transports,
    localAddress: address,
    query: probe ? { probe } : undefined,
  });
  try {
    if (transports.length === 1) assert.equal(transportName(handle), transports[0]);
    const ack = await emitWithAck(handle, 'initialConnection', credentials(user));
    assert.deepEqual(ack, [true], 'initialConnection is acked with true');
    assert.equal(await handle.events.next('auth'), true, '`auth` event is true');
  } catch (err) {
    handle.close();
    throw err;
  }
  return handle;
}

function assertFollowed(followed, follower) {
  assert.equal(followed.followerId, follower.id);
  assert.equal(followed.followerUsername, follower.username);
  assert.equal(followed.following, true);
  assert.ok(Number.isInteger(followed.timestamp), `integer timestamp: ${followed.timestamp}`);
}

describe('nginx in front of three nodes', () => {
  it('runs the documented configuration', () => {
    assert.match(nginx.config, /^\s*hash \$remote_addr consistent;/m);
    assert.match(nginx.config, /^\s*proxy_http_version 1\.1;/m);
    assert.match(nginx.config, /^\s*proxy_set_header Upgrade \$http_upgrade;/m);
    assert.match(nginx.config, /^\s*proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;/m);
    for (const node of nodes) assert.ok(nginx.config.includes(`server 127.0.0.1:${node.port}`));
  });

  it('sends every request of one source address to the same node, and different addresses to every node', async () => {
    for (const [i, list] of addresses.entries()) {
      for (const address of list) {
        for (let n = 0; n < 3; n += 1) {
          assert.equal(await nodeBehindNginxFrom(address), i, `${address} always reaches ${nodes[i].name}`);
        }
      }
    }
    assert.equal(new Set(addresses.flat()).size, NODE_COUNT * ADDRESSES_PER_NODE);
  });

  it('keeps /metrics to the nodes', async () => {
    assert.equal((await httpRequest(`${nginx.url}/metrics`)).status, 404);
    assert.equal((await httpRequest(`${nodes[0].url}/metrics`)).status, 200);
  });
});

let rotation = 0;
for (const version of VERSIONS) {
  describe(`socket.io-client ${version}.x through nginx`, () => {
    for (const [name, transports] of Object.entries(TRANSPORTS)) {
      it(`over ${name} (${transports.join('→')}): a mutation on each node reaches the socket once`, async () => {
        // Spread the sockets of successive tests over the nodes.
        const home = rotation % NODE_COUNT;
        const address = addresses[home][Math.floor(rotation / NODE_COUNT) % 2];
        rotation += 1;
        const probe = crypto.randomBytes(6).toString('hex');

        const a = await signUp(balancer(), 'a');
        // One follower per node, each signed up on the node it acts on.
        const followers = await Promise.all(nodes.map((node) => signUp(node, 'f')));

        await withSockets(async (track) => {
          const sa = track(await connectAs(version, a, { transports, address, probe }));
          if (name === 'upgrade') {
            // The pushes below must travel over the upgraded transport,
            // whose handshake nginx must have sent to the same node.
            await upgraded(sa);
            assert.equal(transportName(sa), 'websocket');
          }
          assert.equal(await nodeOfSocket(sa), home, `the socket from ${address} is on ${nodes[home].name}`);
          const authenticated = sa.events.mark();

          for (const [i, node] of nodes.entries()) {
            const result = await follow(node, followers[i], a);
            assert.equal(result.following, true);
            const followed = await sa.events.next('Followed');
            assertFollowed(followed, followers[i]);
            assert.ok(sa.socket.connected, `still connected after the push from ${node.name}`);
          }
          assert.deepEqual(
            await sa.events.quiet(QUIET_MS, { since: authenticated }),
            [],
            'each Followed arrived once, and nothing else arrived',
          );
        });
        await assertStickySession(probe, address, home, transports);
      });
    }
  });
}

/**
 * Three sockets of `user`, one on each node: 4.x over WebSocket, 3.x over
 * long-polling and 2.x upgrading (or the first version available).
 */
async function socketsOnEveryNode(track, user) {
  const plan = [
    { version: 4, transports: TRANSPORTS.websocket },
    { version: 3, transports: TRANSPORTS.polling },
    { version: 2, transports: TRANSPORTS.upgrade },
  ];
  const handles = [];
  for (const [i, { version, transports }] of plan.entries()) {
    const h = track(await connectAs(version, user, { transports, address: addresses[i][0] }));
    handles.push(h);
  }
  const homes = await Promise.all(handles.map((h) => nodeOfSocket(h)));
  assert.deepEqual(homes, [0, 1, 2], 'one socket on each node');
  return handles;
}

describe('one user with a socket on each node', () => {
  it('one mutation reaches all three sockets, once each', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const marks = sockets.map((h) => h.events.mark());
      // Made on the middle node directly: the other two are across Redis.
      assert.equal((await follow(nodes[1], b, a)).following, true);
      for (const h of sockets) assertFollowed(await h.events.next('Followed'), b);
      for (const [k, h] of sockets.entries()) {
        assert.deepEqual(await h.events.quiet(QUIET_MS, { since: marks[k] }), [], `${h.events.label}: nothing more`);
      }
    });
  });

  it('POST /api/push through nginx reaches every socket of the user, once each', async () => {
    const a = await signUp(balancer(), 'a');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const marks = sockets.map((h) => h.events.mark());
      const data = { note: 'through nginx', n: 42 };
      const res = await httpRequest(`${nginx.url}/api/push`, {
        method: 'POST',
        headers: { authorization: `Bearer ${apiKey}` },
        body: { users: [a.id], event: 'notice', data },
      });
      assert.equal(res.status, 202, `POST /api/push: ${res.text}`);
      const body = res.json();
      assert.equal(body.accepted.users, 1, res.text);
      for (const h of sockets) assert.deepEqual(await h.events.next('notice'), data);
      for (const [k, h] of sockets.entries()) {
        assert.deepEqual(await h.events.quiet(QUIET_MS, { since: marks[k] }), [], `${h.events.label}: nothing more`);
      }
      const refused = await httpRequest(`${nginx.url}/api/push`, {
        method: 'POST',
        headers: { authorization: 'Bearer wrong-key-wrong-key' },
        body: { users: [a.id], event: 'notice', data },
      });
      assert.equal(refused.status, 401, `a wrong key is refused: ${refused.text}`);
    });
  });
});

const ROTATE_SECRET = 'mutation { rotateSecret { id username secretkey } }';
const DELETE_ACCOUNT = 'mutation { deleteAccount }';
const IS_ONLINE = 'query($u:ID!){ isOnline(userId:$u) }';
const USER = 'query($u:ID!){ user(id:$u){ id username } }';
const ME = 'query { me { id } }';

/** `isOnline(user)` as `observer` asks it of each node directly, in node order. */
function isOnlineOnEveryNode(observer, user) {
  return Promise.all(nodes.map((node) => graphql(node, IS_ONLINE, { u: user.id }, observer).then((d) => d.isOnline)));
}

/** Asserts that a GraphQL operation made with `user`'s credentials is refused as UNAUTHENTICATED. */
async function assertUnauthenticated(node, user, what) {
  await assert.rejects(graphql(node, ME, {}, user), /UNAUTHENTICATED/, `${what} (asked on ${node.name})`);
}

/**
 * Asserts that none of `sockets` receives anything more within QUIET_MS
 * (after `marks[k]`, a mark of sockets[k]); watched all at once.
 */
async function assertQuiet(sockets, marks, why) {
  const stray = await Promise.all(sockets.map((h, k) => h.events.quiet(QUIET_MS, { since: marks[k] })));
  sockets.forEach((h, k) => assert.deepEqual(stray[k], [], `${h.events.label}: ${why}`));
}

/**
 * Asserts that each of `sockets` receives `event` with `payload` once, and
 * nothing else after `marks[k]`.
 */
async function assertReceivedOnce(sockets, marks, event, payload) {
  for (const h of sockets) {
    assert.deepEqual(await h.events.next(event), payload, `${h.events.label}: "${event}" with the payload`);
  }
  await assertQuiet(sockets, marks, `"${event}" arrived once, and nothing else arrived`);
}

describe('account changes and isOnline act on every node', () => {
  it('rotateSecret on one node unbinds the sockets on all three; the new secret binds them again', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const tabs = await Promise.all(sockets.map((h) => h.events.next('tabWindowId')));

      const { rotateSecret: rotated } = await graphql(nodes[1], ROTATE_SECRET, {}, a);
      assert.equal(rotated.id, a.id);
      assert.notEqual(rotated.secretkey, a.secretkey, 'a new secret');
      for (const h of sockets) {
        const why = `${h.events.label}: \`auth\` false after rotateSecret on ${nodes[1].name}`;
        assert.equal(await h.events.next('auth'), false, why);
      }
      const unbound = sockets.map((h) => h.events.mark());
      await assertUnauthenticated(nodes[0], a, 'the old secret no longer works');

      // Nothing addressed to the user reaches the unbound sockets: neither a
      // mutation's push (made on another node) nor a backend push, to the
      // user or to one of the tabs.
      assert.equal((await follow(nodes[2], b, a)).following, true);
      await publishBackgroundPush({ pushToUser: a.id, event: 'notice', payload: { after: 'rotation' } });
      await publishBackgroundPush({ pushToUser: a.id, tabWindowId: tabs[0], event: 'notice', payload: { tab: 0 } });
      await assertQuiet(sockets, unbound, 'nothing after `auth` false');
      for (const h of sockets) assert.ok(h.socket.connected, `${h.events.label}: still connected, unauthenticated`);

      // The new secret authenticates each socket again, and pushes resume.
      const renewed = { ...a, secretkey: rotated.secretkey };
      for (const h of sockets) {
        const ack = await emitWithAck(h, 'initialConnection', credentials(renewed));
        assert.deepEqual(ack, [true], `${h.events.label}: the new secret`);
        assert.equal(await h.events.next('auth'), true);
      }
      const rebound = sockets.map((h) => h.events.mark());
      assert.equal((await follow(nodes[0], b, renewed)).following, false, 'b unfollows a');
      for (const h of sockets) {
        const followed = await h.events.next('Followed');
        assert.equal(followed.followerId, b.id, `${h.events.label}: Followed from b`);
        assert.equal(followed.following, false, `${h.events.label}: the unfollow`);
      }
      await assertQuiet(sockets, rebound, 'Followed arrived once');
    });
  });

  it('deleteAccount on one node disconnects the sockets on all three, and the account is gone', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      // Another user's socket on the middle node is left alone.
      const bystander = track(await connectAs(4, b, { transports: TRANSPORTS.websocket, address: addresses[1][1] }));
      assert.equal(await nodeOfSocket(bystander), 1);
      const bystanderMark = bystander.events.mark();

      assert.equal((await graphql(nodes[2], DELETE_ACCOUNT, {}, a)).deleteAccount, true);
      const reasons = await Promise.all(sockets.map((h) => disconnected(h)));
      sockets.forEach((h, k) => {
        const why = `${h.events.label}: disconnected by the server (on ${nodes[k].name})`;
        assert.equal(reasons[k], 'io server disconnect', why);
      });

      for (const node of nodes) {
        assert.equal((await graphql(node, USER, { u: a.id }, b)).user, null, `${node.name} knows no user ${a.id}`);
        await assertUnauthenticated(node, a, 'the deleted user\'s secret no longer works');
      }
      assert.deepEqual(await isOnlineOnEveryNode(b, a), [false, false, false], 'the deleted user is offline');
      const stray = await bystander.events.quiet(QUIET_MS, { since: bystanderMark });
      assert.deepEqual(stray, [], 'the bystander got nothing');
      assert.ok(bystander.socket.connected, 'the bystander is still connected');
    });
  });

  for (let home = 0; home < NODE_COUNT; home += 1) {
    it(`isOnline answers for the whole cluster on every node: one socket on node${home + 1}, then none`, async () => {
      const a = await signUp(balancer(), 'a');
      const observer = await signUp(balancer(), 'o');
      assert.deepEqual(await isOnlineOnEveryNode(observer, a), [false, false, false], 'offline before any socket');
      await withSockets(async (track) => {
        const sa = track(await connectAs(3, a, { transports: TRANSPORTS.websocket, address: addresses[home][0] }));
        assert.equal(await nodeOfSocket(sa), home, `the socket is on ${nodes[home].name}`);
        assert.deepEqual(
          await isOnlineOnEveryNode(observer, a),
          [true, true, true],
          `online on every node while its one socket is on ${nodes[home].name}`,
        );
        sa.close();
        let answers = null;
        await waitFor(
          async () => {
            answers = await isOnlineOnEveryNode(observer, a);
            return answers.every((online) => online === false);
          },
          TIMEOUT_MS,
          () => `every node to answer isOnline false once the socket closed (last: ${JSON.stringify(answers)})`,
        );
      });
    });
  }
});

/**
 * Publishes `message` (an object, sent as JSON, or a string sent as is) on
 * the nodes' BackgroundPush channel with redis-cli, as a backend service
 * would, and checks that all three nodes are subscribed to it.
 */
async function publishBackgroundPush(message) {
  const text = typeof message === 'string' ? message : JSON.stringify(message);
  const receivers = await redisPublish(cluster.backgroundPushChannel, text, cluster.redisUrl);
  assert.equal(receivers, NODE_COUNT, `all ${NODE_COUNT} nodes hear ${cluster.backgroundPushChannel}`);
}

/** A counter of a node's `GET /metrics` (Prometheus text format). */
async function metric(node, name) {
  const res = await httpRequest(`${node.url}/metrics`);
  assert.equal(res.status, 200, `${node.name} /metrics: ${res.text}`);
  const line = res.text.split('\n').find((l) => l.startsWith(`${name} `));
  assert.ok(line, `${node.name} /metrics has ${name}`);
  return Number(line.slice(name.length + 1));
}

/** A fresh `topic:` room name. */
function topicRoom() {
  return `topic:js-${crypto.randomBytes(6).toString('hex')}`;
}

async function joinRoom(handle, room) {
  assert.deepEqual(await emitWithAck(handle, 'joinRoom', room), [{ ok: true }], `${handle.events.label} joins ${room}`);
}

describe('BackgroundPush published with a plain Redis client', () => {
  it('pushToUser reaches every socket of the user on every node once, with the given event or `push`', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const others = await socketsOnEveryNode(track, b);
      const marks = sockets.map((h) => h.events.mark());
      const otherMarks = others.map((h) => h.events.mark());

      const payload = { invoice: 42, lines: ['a', 'b'], paid: false };
      await publishBackgroundPush({ pushToUser: a.id, event: 'invoiceReady', payload });
      await assertReceivedOnce(sockets, marks, 'invoiceReady', payload);

      const marks2 = sockets.map((h) => h.events.mark());
      await publishBackgroundPush({ pushToUser: a.id, payload: 'plain text' });
      await assertReceivedOnce(sockets, marks2, 'push', 'plain text');

      await assertQuiet(others, otherMarks, 'another user\'s sockets got none of it');
    });
  });

  it('pushToRoom reaches the sockets that joined the room on every node once, and no socket outside it', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    const room = topicRoom();
    await withSockets(async (track) => {
      const [a1, a2, a3] = await socketsOnEveryNode(track, a);
      const [b1, b2, b3] = await socketsOnEveryNode(track, b);
      // On every node one socket in the room and one outside it, each user
      // having both; the outsiders are in another room.
      const inside = [a1, a2, b3];
      const outside = [b1, b2, a3];
      for (const h of inside) await joinRoom(h, room);
      for (const h of outside) await joinRoom(h, `${room}-other`);
      const marks = inside.map((h) => h.events.mark());
      const outsideMarks = outside.map((h) => h.events.mark());

      const payload = { board: 7, shapes: [{ x: 1, y: 2 }] };
      await publishBackgroundPush({ pushToRoom: room, event: 'boardChanged', payload });
      await assertReceivedOnce(inside, marks, 'boardChanged', payload);

      const marks2 = inside.map((h) => h.events.mark());
      await publishBackgroundPush({ pushToRoom: room, payload: null });
      await assertReceivedOnce(inside, marks2, 'push', null);

      await assertQuiet(outside, outsideMarks, 'outside the room: nothing');
    });
  });

  it('pushToUser with tabWindowId reaches only that socket, on whichever node holds it', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      const bs = track(await connectAs(4, b, { transports: TRANSPORTS.websocket, address: addresses[1][1] }));
      const tabs = await Promise.all(sockets.map((h) => h.events.next('tabWindowId')));
      for (const tab of tabs) assert.match(tab, /^[0-9a-f]{32}$/, 'tabWindowId is 32 lowercase hex digits');
      assert.equal(new Set(tabs).size, tabs.length, 'every socket has its own tabWindowId');
      const all = [...sockets, bs];

      for (const [k, tab] of tabs.entries()) {
        const marks = all.map((h) => h.events.mark());
        const payload = { tab: k };
        await publishBackgroundPush({ pushToUser: a.id, tabWindowId: tab, event: 'tabNotice', payload });
        assert.deepEqual(await sockets[k].events.next('tabNotice'), payload, `the socket on ${nodes[k].name}`);
        await assertQuiet(all, marks, `only the socket on ${nodes[k].name} got the push to its tab`);
      }

      // The tab of one of a's sockets, addressed as another user: nobody.
      const marks = all.map((h) => h.events.mark());
      await publishBackgroundPush({ pushToUser: b.id, tabWindowId: tabs[1], event: 'tabNotice', payload: {} });
      await assertQuiet(all, marks, 'a tab pushed as another user than its own reaches nobody');
    });
  });

  it('malformed messages are dropped, and every node stays up and delivers the next message', async () => {
    const a = await signUp(balancer(), 'a');
    const room = topicRoom();
    await withSockets(async (track) => {
      const sockets = await socketsOnEveryNode(track, a);
      for (const h of sockets) await joinRoom(h, room);
      const rejected = (node) => metric(node, 'tidings_background_push_rejected_total');
      const rejectedBefore = await Promise.all(nodes.map(rejected));
      const marks = sockets.map((h) => h.events.mark());

      const malformed = [
        `pushToUser ${a.id} hello`,
        `{"pushToUser":"${a.id}","event":"bad","payload":{"n":`,
        `{"pushToRoom":"${room}","event":"bad","payload":`,
        JSON.stringify({ pushToUser: a.id, pushToRoom: room, event: 'bad', payload: 1 }),
      ];
      for (const message of malformed) await publishBackgroundPush(message);
      for (const [i, node] of nodes.entries()) {
        await waitFor(
          async () => (await rejected(node)) === rejectedBefore[i] + malformed.length,
          TIMEOUT_MS,
          `${node.name} to count ${malformed.length} more rejected BackgroundPush messages`,
        );
        const res = await httpRequest(`${node.url}/healthz`);
        assert.equal(res.status, 200, `${node.name} still serves /healthz`);
      }
      await assertQuiet(sockets, marks, 'nothing from malformed messages');

      const payload = { after: 'malformed' };
      await publishBackgroundPush({ pushToUser: a.id, event: 'stillHere', payload });
      await assertReceivedOnce(sockets, marks, 'stillHere', payload);
      const marks2 = sockets.map((h) => h.events.mark());
      await publishBackgroundPush({ pushToRoom: room, event: 'roomStillHere', payload });
      await assertReceivedOnce(sockets, marks2, 'roomStillHere', payload);
    });
  });
});

const CREATE_CHATROOM = 'mutation($n:String!,$m:[ID!]!){ createChatroom(name:$n, memberIds:$m){ id } }';
const REMOVE_MEMBER =
  'mutation($c:ID!,$u:ID!){ removeChatroomMember(chatroomId:$c, userId:$u){ id memberIds } }';

/** Relays an event of `type` from `handle` to `room`; the ack must say ok. */
async function relayTo(handle, room, type) {
  const event = { type, timestamp: Date.now(), userId: null, payload: { from: handle.events.label }, room };
  assert.deepEqual(await emitWithAck(handle, 'event', event), [{ ok: true }], `${handle.events.label} relays ${type}`);
}

describe('live chatroom membership across nodes', () => {
  it('removeChatroomMember on one node cuts the removed user off on all three at once; the others still hear the room', async () => {
    const [a, b, c] = await Promise.all(['a', 'b', 'c'].map((p) => signUp(balancer(), p)));
    const { createChatroom: created } = await graphql(nodes[0], CREATE_CHATROOM, { n: 'ops', m: [b.id, c.id] }, a);
    const chatroom = created.id;
    const room = `chatroom:${chatroom}`;
    await withSockets(async (track) => {
      const removed = await socketsOnEveryNode(track, b);
      const stayed = await socketsOnEveryNode(track, c);
      // The speaker is on node 3, which holds one of the removed sockets.
      const speaker = track(await connectAs(4, a, { transports: TRANSPORTS.websocket, address: addresses[2][1] }));
      assert.equal(await nodeOfSocket(speaker), 2, 'the speaker is on node3');
      for (const h of [...removed, ...stayed, speaker]) await joinRoom(h, room);
      await relayTo(speaker, room, 'BEFORE');
      for (const h of [...removed, ...stayed]) {
        assert.equal((await h.events.next('event')).type, 'BEFORE', `${h.events.label}: in the room before`);
      }

      const marks = removed.map((h) => h.events.mark());
      // Made on node 2; then at once, without waiting for any push: a relay
      // and typing from node 3, a message sent on node 1.
      const { removeChatroomMember: after } = await graphql(nodes[1], REMOVE_MEMBER, { c: chatroom, u: b.id }, a);
      assert.ok(!after.memberIds.includes(b.id), 'the mutation answers without the removed user');
      await relayTo(speaker, room, 'AFTER');
      assert.deepEqual(await emitWithAck(speaker, 'typing', { chatroomId: chatroom }), [{ ok: true }]);
      await sendMessage(nodes[0], a, chatroom, 'after');

      for (const h of stayed) {
        assert.equal((await h.events.next('event')).type, 'AFTER', `${h.events.label}: still hears events`);
        assert.equal((await h.events.next('typing')).userId, a.id, `${h.events.label}: still hears typing`);
        assert.equal((await h.events.next('chatroom')).message.content, 'after', `${h.events.label}: still hears messages`);
      }
      const heard = await Promise.all(
        removed.map((h, k) => h.events.quiet(QUIET_MS, { since: marks[k], events: ['event', 'typing', 'chatroom'] })),
      );
      removed.forEach((h, k) =>
        assert.deepEqual(heard[k], [], `${h.events.label} (on ${nodes[k].name}): nothing more of the room`),
      );
      for (const [k, h] of removed.entries()) {
        const told = await h.events.next('updatedChat');
        assert.equal(told.chatroomId, chatroom, `${h.events.label}: told of the removal`);
        assert.ok(!told.memberIds.includes(b.id), `${h.events.label}: without themselves in memberIds`);
        assert.deepEqual(
          h.events.unconsumed({ since: marks[k], events: ['updatedChat'] }),
          [],
          `${h.events.label}: not told of the message sent after the removal`,
        );
        const [ack] = await emitWithAck(h, 'joinRoom', room);
        assert.match(ack.error, /not a member/, `${h.events.label}: may not join again on ${nodes[k].name}`);
      }
    });
  });
});

describe('X-Forwarded-For', () => {
  it('each node tells client addresses apart behind nginx (per-address failure limit)', async () => {
    // Two source addresses that reach the same node; the limit is per node.
    const home = 0;
    const [blocked, other] = [addresses[home][2], addresses[home][1]];
    const a = await signUp(balancer(), 'a');
    await withSockets(async (track) => {
      const bad = track(await connect(4, balancer(), { localAddress: blocked }));
      for (let n = 0; n < MAX_FAILED_AUTH_PER_ADDRESS; n += 1) {
        const ack = await emitWithAck(bad, 'initialConnection', { id: a.id, secretkey: 'wrong' });
        assert.deepEqual(ack, [false], `wrong secret ${n + 1} is refused`);
        assert.equal(await bad.events.next('auth'), false);
      }
      // Now even the right secret is refused from that address…
      const ack = await emitWithAck(bad, 'initialConnection', credentials(a));
      assert.deepEqual(ack, [false], 'the right secret is refused from the blocked address');
      const error = await bad.events.next('error');
      assert.match(error.error, /too many failed authentication attempts from your address/);
      // …and the node logged the client's address, not nginx's.
      await waitFor(
        () =>
          nodes[home]
            .log()
            .split('\n')
            .some((l) => l.includes('too many failures from this address') && l.includes(blocked)),
        TIMEOUT_MS,
        () => `${nodes[home].name} to log the refusal with addr ${blocked}`,
      );
      // Another address on the same node is not affected.
      const good = track(await connectAs(4, a, { transports: TRANSPORTS.websocket, address: other }));
      assert.equal(await nodeOfSocket(good), home);
    });
  });
});

async function expectPresence(handle, user, online) {
  const event = await handle.events.next('presence');
  assert.equal(event.userId, user.id, `${handle.events.label}: presence of ${user.username}`);
  assert.equal(event.online, online, `${handle.events.label}: online ${online}`);
  assert.ok(Number.isInteger(event.timestamp), `integer timestamp: ${event.timestamp}`);
}

describe('presence across nodes', () => {
  it('three tabs on two nodes: one online and one offline at every follower, each published once on Presence', async () => {
    const a = await signUp(balancer(), 'a');
    const b = await signUp(balancer(), 'b');
    await follow(nodes[2], b, a);
    const published = await redisSubscribe(cluster.presenceChannel);
    try {
      await withSockets(async (track) => {
        // The follower watches from nodes 1 and 3.
        const watchers = [
          track(await connectAs(4, b, { transports: TRANSPORTS.websocket, address: addresses[0][0] })),
          track(await connectAs(2, b, { transports: TRANSPORTS.polling, address: addresses[2][0] })),
        ];
        assert.equal((await published.messages.next('message')).userId, b.id, "the follower's own transition");
        const tabs = [
          track(await connectAs(4, a, { transports: TRANSPORTS.websocket, address: addresses[0][1] })),
          track(await connectAs(3, a, { transports: TRANSPORTS.polling, address: addresses[1][0] })),
          track(await connectAs(2, a, { transports: TRANSPORTS.upgrade, address: addresses[1][1] })),
        ];
        assert.deepEqual(await Promise.all(tabs.map((h) => nodeOfSocket(h))), [0, 1, 1], 'tabs on nodes 1, 2, 2');
        for (const w of watchers) await expectPresence(w, a, true);
        const online = await published.messages.next('message');
        assert.deepEqual([online.userId, online.online], [a.id, true]);
        assert.ok(nodes.some((n) => n.nodeId === online.nodeId), `nodeId names a node: ${online.nodeId}`);
        assert.deepEqual(await isOnlineOnEveryNode(b, a), [true, true, true]);
        const marks = watchers.map((w) => w.events.mark());

        tabs[1].close();
        tabs[0].close();
        await assertQuiet(watchers, marks, 'closing two of three tabs changes nothing');
        assert.deepEqual(await isOnlineOnEveryNode(b, a), [true, true, true], 'the third tab is open');
        tabs[2].close();
        for (const w of watchers) await expectPresence(w, a, false);
        await assertQuiet(watchers, watchers.map((w) => w.events.mark()), 'one offline, once');
        const offline = await published.messages.next('message');
        assert.deepEqual([offline.userId, offline.online], [a.id, false]);
        assert.deepEqual(await published.messages.quiet(QUIET_MS), [], 'one message per transition');
        await waitFor(async () => (await isOnlineOnEveryNode(b, a)).every((o) => o === false));
      });
    } finally {
      published.stop();
    }
  });

  it(`a node killed with SIGKILL takes its users offline within ${PRESENCE_TIMEOUT_MS} ms`, async () => {
    // A fourth node for this test only, so that the three stay up.
    const doomed = await startNode({ databaseUrl: cluster.database.url, env: cluster.nodeEnv, name: 'doomed' });
    try {
      const a = await signUp(balancer(), 'a');
      const b = await signUp(balancer(), 'b');
      await follow(nodes[0], b, a);
      await withSockets(async (track) => {
        const watcher = track(await connectAs(4, b, { transports: TRANSPORTS.websocket, address: addresses[1][0] }));
        const tabs = [
          track(await connect(4, doomed, { transports: TRANSPORTS.websocket })),
          track(await connect(3, doomed, { transports: TRANSPORTS.polling })),
        ];
        for (const tab of tabs) {
          assert.deepEqual(await emitWithAck(tab, 'initialConnection', credentials(a)), [true]);
        }
        await expectPresence(watcher, a, true);
        assert.deepEqual(await isOnlineOnEveryNode(b, a), [true, true, true]);

        const killed = Date.now();
        doomed.kill('SIGKILL');
        await doomed.exited;
        await expectPresence(watcher, a, false);
        const took = Date.now() - killed;
        console.log(`a killed node's user went offline ${took} ms after the SIGKILL (bound ${PRESENCE_TIMEOUT_MS} ms)`);
        assert.ok(took <= PRESENCE_TIMEOUT_MS, `offline after ${took} ms, bound ${PRESENCE_TIMEOUT_MS} ms`);
        assert.deepEqual(await isOnlineOnEveryNode(b, a), [false, false, false]);
        await assertQuiet([watcher], [watcher.events.mark()], 'swept once, announced once');
      });
    } finally {
      await doomed.stop();
    }
  });
});
