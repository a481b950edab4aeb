// The peer that loadtests/harness compares collab against: Hocuspocus (pinned in
// package.json) with its Redis extension, so two instances share documents over
// Redis, plus a write-token emulation on Redis (SET NX PX to acquire, DEL to
// release, waiters subscribed to a release channel for the hand-off).
//
// The token requests ride Hocuspocus's own stateless messages on the document's
// connection, as JSON in the shape of collab's protocol (docs/protocol.md), so the
// harness's driver sends the same requests to both servers:
//   {"type":"acquire","rid":R,"wait":bool} -> granted {rid,fence} | queued {rid} |
//                                             error {rid,code:"locked"}
//   a queued acquire is answered later by granted {rid,fence}
//   {"type":"release","rid":R}             -> released {rid} (DEL + PUBLISH)
//   {"type":"heartbeat","rid":R}           -> renews this connection's tokens (PEXPIRE)
// Edits are plain Yjs updates; Hocuspocus applies them in memory, acknowledges
// with its SyncStatus message and broadcasts them. Nothing is persisted.
//
//   node server.mjs --port 4500 --redis redis://127.0.0.1:6379/0 --prefix peer1234 [--name peer1]

import { parseArgs } from "node:util";
import { Redis as RedisExtension } from "@hocuspocus/extension-redis";
import { Server } from "@hocuspocus/server";
import RedisClient from "ioredis";

const { values: opts } = parseArgs({
  options: {
    port: { type: "string" },
    address: { type: "string", default: "127.0.0.1" },
    redis: { type: "string", default: "redis://127.0.0.1:6379/0" },
    prefix: { type: "string", default: "peer" },
    name: { type: "string", default: "peer" },
    "lease-ttl-ms": { type: "string", default: "15000" },
    "poll-ms": { type: "string", default: "1000" },
  },
});
if (!opts.port) {
  console.error("--port is required");
  process.exit(2);
}
const LEASE_TTL_MS = Number(opts["lease-ttl-ms"]);
const POLL_MS = Number(opts["poll-ms"]);
const lockKey = (doc) => `${opts.prefix}:lock:${doc}`;
const fenceKey = (doc) => `${opts.prefix}:fence:${doc}`;
const RELEASED = `${opts.prefix}:released`;

const redis = new RedisClient(opts.redis);
const sub = new RedisClient(opts.redis);

/** Token emulation state of this instance. */
const held = new Map(); // doc -> connection holding it here
const waiters = new Map(); // doc -> [{connection, rid}] in arrival order
let holderIds = 0;
const holderId = new WeakMap(); // connection -> unique value stored under the lock key

function send(connection, frame) {
  connection.sendStateless(JSON.stringify(frame));
}

function idOf(connection) {
  let id = holderId.get(connection);
  if (id === undefined) {
    id = `${opts.name}:${++holderIds}`;
    holderId.set(connection, id);
  }
  return id;
}

/** One round trip: SET NX PX, and the next fence (monotonic per document; the
 * counter is dropped an hour after the last grant so benchmark runs leave nothing). */
async function tryAcquire(doc, connection) {
  const [[, ok], [, fence]] = await redis
    .pipeline()
    .set(lockKey(doc), idOf(connection), "PX", LEASE_TTL_MS, "NX")
    .incr(fenceKey(doc))
    .pexpire(fenceKey(doc), 3600000)
    .exec();
  if (ok !== "OK") return null;
  held.set(doc, connection);
  return fence;
}

/** Hand the token to the first waiter here that can still take it. */
async function wake(doc) {
  const queue = waiters.get(doc);
  while (queue && queue.length) {
    const head = queue[0];
    if (head.connection.webSocket.readyState !== 1) {
      queue.shift();
      continue;
    }
    const fence = await tryAcquire(doc, head.connection);
    if (fence === null) return; // someone else got it; wait for the next release
    queue.shift();
    send(head.connection, { type: "granted", rid: head.rid, note: doc, fence });
  }
  waiters.delete(doc);
}

await sub.subscribe(RELEASED);
sub.on("message", (_channel, doc) => {
  if (waiters.has(doc)) wake(doc).catch((e) => console.error("wake", e));
});
// A holder that died never publishes: its lease expires and a poll finds it free.
setInterval(() => {
  for (const doc of waiters.keys()) wake(doc).catch((e) => console.error("poll", e));
}, POLL_MS).unref();

const tokens = {
  async onStateless({ connection, documentName: doc, payload }) {
    let req;
    try {
      req = JSON.parse(payload);
    } catch {
      return;
    }
    const rid = req.rid;
    if (req.type === "acquire") {
      if (held.get(doc) === connection) {
        send(connection, { type: "granted", rid, note: doc, fence: 0, already: true });
        return;
      }
      const fence = await tryAcquire(doc, connection);
      if (fence !== null) {
        send(connection, { type: "granted", rid, note: doc, fence });
      } else if (req.wait) {
        if (!waiters.has(doc)) waiters.set(doc, []);
        waiters.get(doc).push({ connection, rid });
        send(connection, { type: "queued", rid, note: doc });
      } else {
        send(connection, { type: "error", rid, code: "locked" });
      }
    } else if (req.type === "release") {
      if (held.get(doc) !== connection) {
        send(connection, { type: "error", rid, code: "not_holder" });
        return;
      }
      held.delete(doc);
      await redis.pipeline().del(lockKey(doc)).publish(RELEASED, doc).exec();
      send(connection, { type: "released", rid, note: doc });
    } else if (req.type === "heartbeat") {
      const mine = [...held].filter(([, c]) => c === connection).map(([d]) => d);
      if (mine.length) {
        const p = redis.pipeline();
        for (const d of mine) p.pexpire(lockKey(d), LEASE_TTL_MS);
        await p.exec();
      }
      send(connection, { type: "heartbeat_ack", rid });
    } else {
      send(connection, { type: "error", rid, code: "bad_request" });
    }
  },
  async onDisconnect() {
    // A dropped holder keeps its lease in Redis until it expires, as in collab;
    // only this instance's memory of it goes.
    for (const [doc, c] of held) {
      if (c.webSocket.readyState !== 1) held.delete(doc);
    }
  },
};

const server = new Server({
  name: opts.name,
  port: Number(opts.port),
  address: opts.address,
  quiet: true,
  async onAuthenticate({ token }) {
    if (!token) throw new Error("token required");
  },
  extensions: [
    new RedisExtension({
      createClient: () => new RedisClient(opts.redis),
      prefix: `${opts.prefix}:hp`,
      identifier: `${opts.name}-${process.pid}`,
    }),
    tokens,
  ],
});
await server.listen();
console.log(`peer ${opts.name} listening on ${opts.address}:${opts.port}`);
