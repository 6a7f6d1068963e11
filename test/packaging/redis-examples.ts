import { OK_MARKER } from "./example-source";
import type { Example } from "./examples";

/** A Redis client the store may support: run with it when `@presence/redis`'s peer range admits this major. */
export interface RedisClientVariant {
  client: "ioredis" | "redis";
  major: number;
  example: Example;
}

/** After connecting: alice counted, and seen by a second store on the same Redis (another process would see the same). */
const COUNTED_AND_CLOSED = `
const socket = await connected(ioClient(await listening(httpServer), { auth: { userId: "alice" }, reconnection: false }));
await until("alice to be counted", () => presence.isUserConnected("alice"));
assert.equal(await presence.usersCount(), 1);
assert.deepEqual(await presence.usersList(), ["alice"]);
assert.equal(await other.isUserConnected("alice"), true, "a second store on the same Redis sees alice");

socket.disconnect();
await presence.close();
await until("alice to be gone once the store closed", async () => !(await other.isUserConnected("alice")));
await other.close();
await within(30000, "the Socket.IO server to close", io.close());
`;

const SERVER_IMPORTS = [
  { from: "node:http", named: ["createServer"] },
  { from: "socket.io", named: ["Server"] },
  { from: "@socket.io/redis-adapter", named: ["createAdapter"] },
  { from: "@presence/socketio", named: ["createPresence"] },
  { from: "@presence/redis", named: ["RedisStore"] },
  { from: "socket.io-client", named: ["io as ioClient"] },
];

/** The README's example: ioredis (REDIS_URL points at a throwaway redis-server). */
const IOREDIS: Example = {
  pkg: "@presence/redis",
  readme: [
    `import { Redis } from "ioredis";`,
    `import { createAdapter } from "@socket.io/redis-adapter";`,
    `import { createPresence } from "@presence/socketio";`,
    `import { RedisStore } from "@presence/redis";`,
    `const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");`,
    `const subClient = redis.duplicate();`,
    `const io = new Server(httpServer, { adapter: createAdapter(redis, subClient) });`,
    `store: new RedisStore({ redis }),`,
  ],
  imports: [{ from: "ioredis", named: ["Redis"] }, ...SERVER_IMPORTS],
  body: `
const identify = (socket) => socket.handshake.auth.userId;
const httpServer = createServer().listen(0, "127.0.0.1");

const redis = new Redis(process.env.REDIS_URL);
const subClient = redis.duplicate();
const io = new Server(httpServer, { adapter: createAdapter(redis, subClient) });
const presence = createPresence(io, {
  store: new RedisStore({ redis }),
  identify,
});

const other = new RedisStore({ redis: new Redis(process.env.REDIS_URL) });
${COUNTED_AND_CLOSED}
redis.disconnect();
console.log("${OK_MARKER}");
process.exit(0); // the adapter's subscriber (redis.duplicate()) and the second store's client stay open
`,
};

/**
 * node-redis (`redis`), as the Redis adapter's docs connect it. The package's
 * README has no node-redis snippet yet: this runs once the peer range lists
 * `redis`, and its lines must then appear in the README.
 */
const NODE_REDIS: Example = {
  pkg: "@presence/redis",
  readme: [
    `import { createClient } from "redis";`,
    `const redis = createClient({ url: process.env.REDIS_URL ?? "redis://127.0.0.1:6379" });`,
    `await Promise.all([redis.connect(), subClient.connect()]);`,
    `store: new RedisStore({ redis }),`,
  ],
  imports: [{ from: "redis", named: ["createClient"] }, ...SERVER_IMPORTS],
  body: `
const identify = (socket) => socket.handshake.auth.userId;
const httpServer = createServer().listen(0, "127.0.0.1");

const redis = createClient({ url: process.env.REDIS_URL });
const subClient = redis.duplicate();
await within(30000, "node-redis to connect", Promise.all([redis.connect(), subClient.connect()]));
const io = new Server(httpServer, { adapter: createAdapter(redis, subClient) });
const presence = createPresence(io, {
  store: new RedisStore({ redis }),
  identify,
});

const otherClient = createClient({ url: process.env.REDIS_URL });
await within(30000, "node-redis to connect", otherClient.connect());
const other = new RedisStore({ redis: otherClient });
${COUNTED_AND_CLOSED}
console.log("${OK_MARKER}");
process.exit(0); // the clients stay open
`,
};

/** Every client the issue asks for; each runs only if the peer range admits it. */
export const REDIS_VARIANTS: RedisClientVariant[] = [
  { client: "ioredis", major: 5, example: IOREDIS },
  { client: "ioredis", major: 6, example: IOREDIS },
  { client: "redis", major: 4, example: NODE_REDIS },
  { client: "redis", major: 5, example: NODE_REDIS },
  { client: "redis", major: 6, example: NODE_REDIS }, // the latest major on npm today
];
