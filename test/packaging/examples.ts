import { OK_MARKER, PRIMARY_ASKS, WORKER_ANSWERS, type ExampleSource } from "./example-source";

/**
 * Each package README's usage example, adapted only to run and exit: a real
 * Socket.IO server on port 0, a real socket.io-client, an assertion that the
 * user is counted, then everything closed. `readme` lists lines of the
 * README's snippet that the example uses as they are (compared without
 * whitespace and comments), so a README that changes its example makes this
 * test fail until the example follows.
 */
export interface Example extends ExampleSource {
  /** The package whose README this example comes from. */
  pkg: string;
  readme: string[];
  /** Warning codes the example provokes on purpose, each expected exactly once. */
  warns?: string[];
}

export const CORE: Example = {
  pkg: "@presence/core",
  readme: [
    `import { LocalPresence } from "@presence/core";`,
    `const local = new LocalPresence();`,
    `local.connect("socket-1", "alice");  // [{ type: "connected", userId: "alice", version }]: alice came online`,
    `local.disconnect("socket-2");        // { userId: "alice", transitions: [{ type: "disconnected", ... }] }: alice went offline`,
  ],
  imports: [{ from: "@presence/core", named: ["LocalPresence", "assertUserId", "InvalidUserIdError", "PresenceError"] }],
  body: `
const local = new LocalPresence();
const [online] = local.connect("socket-1", "alice"); // alice came online
assert.equal(online.type, "connected");
assert.ok(Number.isSafeInteger(online.version));
assert.deepEqual(local.connect("socket-2", "alice"), []); // a second tab
assert.deepEqual(local.connect("socket-2", "alice"), []); // a repeat changes nothing
assert.deepEqual(local.disconnect("socket-1"), { userId: "alice", transitions: [] }); // alice still has a tab
const { transitions } = local.disconnect("socket-2"); // alice went offline
assert.equal(transitions[0].type, "disconnected");
assert.ok(transitions[0].version > online.version); // the decider's order

// Ids and errors: typed, with a code
assert.throws(() => assertUserId(""), (error) => error instanceof InvalidUserIdError && error instanceof PresenceError && error.code === "INVALID_USER_ID" && error.reason === "empty");
assert.throws(() => assertUserId("x".repeat(257)), (error) => error instanceof InvalidUserIdError && error.reason === "too-long");
assertUserId("alice");
console.log("${OK_MARKER}");
`,
};

export const MEMORY: Example = {
  pkg: "@presence/memory",
  readme: [
    `import { Server, type Socket } from "socket.io";`,
    `import { createPresence } from "@presence/socketio";`,
    `import { MemoryStore } from "@presence/memory";`,
    `const presence = createPresence(io, {`,
    `store: new MemoryStore(),`,
    `identify: (socket) => sessionUser(socket)?.id,`,
  ],
  imports: [
    { from: "socket.io", named: ["Server"] },
    { from: "@presence/socketio", named: ["createPresence"] },
    { from: "@presence/memory", named: ["MemoryStore"] },
    { from: "socket.io-client", named: ["io as ioClient"] },
  ],
  body: `
const sessions = new Map([["session-1", { id: "alice" }]]); // stands for the app's sessions
const sessionUser = (socket) => sessions.get(socket.handshake.auth.session);

const io = new Server(0); // the README listens on 3000: any free port here
const presence = createPresence(io, {
  store: new MemoryStore(),
  identify: (socket) => sessionUser(socket)?.id,
});

const socket = await connected(ioClient(await listening(io.httpServer), { auth: { session: "session-1" }, reconnection: false }));
await until("alice to be counted", () => presence.isUserConnected("alice"));
assert.equal(await presence.usersCount(), 1);
assert.deepEqual(await presence.usersList(), ["alice"]);

socket.disconnect();
await presence.close();
await within(30000, "the Socket.IO server to close", io.close());
console.log("${OK_MARKER}");
`,
};

export const SOCKETIO: Example = {
  pkg: "@presence/socketio",
  // the forged token's refusal is told to the operator, once
  warns: ["PRESENCE_IDENTIFY_NO_USER"],
  readme: [
    `import { Server } from "socket.io";`,
    `import { createPresence } from "@presence/socketio";`,
    `import { MemoryStore } from "@presence/memory";`,
    `identify: async (socket) => (await verify(socket.handshake.auth.token))?.userId,`,
    `leaveDelayMs: 2000, // the default: a reload does not flap`,
    `presence.on("connected", (userId) => {}); // offline -> online, once`,
    `await presence.isUserConnected("alice");`,
    `for await (const page of presence.users({ pageSize: 500 })) {`,
    `socket.on("user has connected", (userId, info, version) => {}); // info: the user's info or null`,
  ],
  imports: [
    { from: "socket.io", named: ["Server"] },
    { from: "@presence/socketio", named: ["createPresence"] },
    { from: "@presence/memory", named: ["MemoryStore"] },
    { from: "socket.io-client", named: ["io as ioClient"] },
  ],
  body: `
const tokens = new Map([["token-of-alice", { userId: "alice" }]]); // stands for the app's token check
const verify = async (token) => tokens.get(token);

const io = new Server(0);
const presence = createPresence(io, {
  store: new MemoryStore(),
  identify: async (socket) => (await verify(socket.handshake.auth.token))?.userId,
  leaveDelayMs: 2000,
});

const transitions = [];
const errors = [];
presence.on("connected", (userId) => transitions.push(["connected", userId]));
presence.on("disconnected", (userId) => transitions.push(["disconnected", userId]));
presence.on("error", (error) => errors.push(error));

const url = await listening(io.httpServer);
const socket = ioClient(url, { auth: { token: "token-of-alice" }, reconnection: false });
const announced = within(30000, '"user has connected" for alice', new Promise((resolve) => {
  socket.on("user has connected", (userId, info, version) => userId === "alice" && info === null && Number.isSafeInteger(version) && resolve());
}));
await connected(socket);
await announced;

assert.equal(await presence.isUserConnected("alice"), true);
assert.equal(await presence.usersCount(), 1);
assert.deepEqual(await presence.usersList(), ["alice"]);
const pages = [];
for await (const page of presence.users({ pageSize: 500 })) pages.push(page.map(({ userId, connections }) => ({ userId, connections })));
assert.deepEqual(pages, [[{ userId: "alice", connections: 1 }]]);

// a bad token is refused with "unauthorized", nothing counted
const stranger = ioClient(url, { auth: { token: "forged" }, reconnection: false });
const refusal = await within(30000, "the refused client's connect_error", once(stranger, "connect_error"));
assert.equal(refusal[0].message, "unauthorized");
stranger.close();
assert.equal(await presence.usersCount(), 1);

socket.disconnect();
await presence.close(); // removes this server's connections, emits the leaves
assert.deepEqual(transitions, [["connected", "alice"], ["disconnected", "alice"]]);
assert.deepEqual(errors, []);
await within(30000, "the Socket.IO server to close", io.close());
console.log("${OK_MARKER}");
`,
};

/**
 * `@presence/client` in Node: the README's clients (every user, a room, a list
 * of users, the count) on socket.io-client, against a server that uses
 * @presence/socketio (sync on by default). bob comes and goes to show diffs.
 */
export const CLIENT: Example = {
  pkg: "@presence/client",
  readme: [
    `import { io } from "socket.io-client";`,
    `import { createPresenceClient, type PresenceUser } from "@presence/client";`,
    `const online = createPresenceClient<Info>(socket); // every online user`,
    `const general = createPresenceClient<Info>(socket, { room: "general" }); // a room's users (the socket must be a member, by default)`,
    `const friends = createPresenceClient<Info>(socket, { userIds: ["alice", "bob"] });`,
    `const count = createPresenceClient(socket, { countOnly: true }); // the count alone`,
    `online.on("sync", () => render(online.list())); // after every change of the view, and only then`,
    `online.on("join", ({ userId, info }) => {});`,
    `online.on("leave", (userId) => {});`,
  ],
  imports: [
    { from: "socket.io", named: ["Server"] },
    { from: "@presence/socketio", named: ["createPresence"] },
    { from: "@presence/memory", named: ["MemoryStore"] },
    { from: "socket.io-client", named: ["io"] },
    { from: "@presence/client", named: ["createPresenceClient"] },
  ],
  body: `
// the server (from the @presence/socketio README): "general" is a presence room every socket joins
const tokens = new Map([["token-of-alice", "alice"], ["token-of-bob", "bob"]]);
const server = new Server(0);
const presence = createPresence(server, {
  store: new MemoryStore(),
  identify: (socket) => tokens.get(socket.handshake.auth.token),
  rooms: (room) => room === "general",
  leaveDelayMs: 0, // bob's leave is announced at once here
});
server.on("connection", (socket) => socket.join("general"));
const url = await listening(server.httpServer);

// the client, as its README shows it
let token = "token-of-alice";
const socket = io(url, { auth: { token } });

const online = createPresenceClient(socket);                      // every online user
const general = createPresenceClient(socket, { room: "general" }); // a room's users
const friends = createPresenceClient(socket, { userIds: ["alice", "bob"] });
const count = createPresenceClient(socket, { countOnly: true });   // the count alone

let rendered = [];
const render = (users) => (rendered = users.map((user) => user.userId).sort());
const joins = [];
const leaves = [];
online.on("sync", () => render(online.list()));  // after the state, and after every diff
online.on("join", ({ userId, info }) => joins.push(userId));
online.on("leave", (userId) => leaves.push(userId));
const errors = [];
for (const client of [online, general, friends, count]) client.on("error", (error) => errors.push(error));

const ids = (client) => client.list().map((user) => user.userId).sort().join(",");
await until("every client to show alice", () => rendered.join(",") === "alice" && ids(general) === "alice" && ids(friends) === "alice" && count.count === 1);
assert.deepEqual(online.get("alice"), { userId: "alice", info: undefined });

token = "token-of-bob";
const bob = await connected(io(url, { auth: { token }, reconnection: false }));
await until("bob's join to reach every client", () => rendered.join(",") === "alice,bob" && ids(general) === "alice,bob" && ids(friends) === "alice,bob" && count.count === 2);
bob.disconnect();
await until("bob's leave to reach every client", () => rendered.join(",") === "alice" && ids(general) === "alice" && ids(friends) === "alice" && count.count === 1);
assert.deepEqual(joins.filter((userId) => userId === "bob"), ["bob"]);
assert.deepEqual(leaves, ["bob"]);
assert.deepEqual(count.list(), []); // countOnly: list() stays empty
assert.deepEqual(errors, []);

for (const client of [online, general, friends, count]) client.close(); // unsubscribes
socket.disconnect();
await presence.close();
await within(30000, "the Socket.IO server to close", server.close());
console.log("${OK_MARKER}");
`,
};

/** @presence/cluster: the README's primary and workers, with 2 workers and a client that connects through sticky. */
export const CLUSTER: Example = {
  pkg: "@presence/cluster",
  readme: [
    `import { setupMaster, setupWorker } from "@presence/sticky";`,
    `import { createAdapter, setupPrimary as setupAdapterPrimary } from "@socket.io/cluster-adapter";`,
    `import { createPresence } from "@presence/socketio";`,
    `import { createClusterStore, setupPrimary } from "@presence/cluster";`,
    `setupMaster(httpServer, { loadBalancingMethod: "least-connection" }); // sticky sessions`,
    `setupPrimary(); // @presence/cluster: before forking`,
    `cluster.setupPrimary({ serialization: "advanced" }); // sticky passes each request's first bytes (a Buffer) to a worker`,
    `const io = new Server(httpServer, { adapter: createAdapter() });`,
    `store: createClusterStore(),`,
    `identify: (socket) => socket.handshake.auth.userId,`,
  ],
  imports: [
    { from: "node:cluster", default: "cluster" },
    { from: "node:http", named: ["createServer"] },
    { from: "@presence/sticky", named: ["setupMaster", "setupWorker"] },
    { from: "@socket.io/cluster-adapter", named: ["createAdapter", "setupPrimary as setupAdapterPrimary"] },
    { from: "@presence/socketio", named: ["createPresence"] },
    { from: "@presence/cluster", named: ["createClusterStore", "setupPrimary"] },
    { from: "socket.io", named: ["Server"] },
    { from: "socket.io-client", named: ["io as ioClient"] },
  ],
  body: `
${PRIMARY_ASKS}
if (cluster.isPrimary) {
  let closing = false;
  const httpServer = createServer();
  setupMaster(httpServer, { loadBalancingMethod: "least-connection" }); // sticky sessions
  setupAdapterPrimary();  // the cluster adapter: broadcasts reach every worker's clients
  setupPrimary();         // @presence/cluster: before forking
  cluster.setupPrimary({ serialization: "advanced" }); // sticky passes each request's first bytes (a Buffer) to a worker
  httpServer.listen(0, "127.0.0.1"); // the README listens on 3000
  for (let i = 0; i < 2; i++) cluster.fork(); // the README forks one per core
  cluster.on("exit", () => closing || cluster.fork()); // a restarted worker starts clean

  const workers = Object.values(cluster.workers);
  await Promise.all(workers.map(ready));
  const socket = await connected(ioClient(await listening(httpServer), { auth: { userId: "alice" }, reconnection: false }));
  for (const worker of workers) await until(\`worker \${worker.id} to see alice online\`, () => ask(worker, "isUserConnected"));
  for (const worker of workers) assert.equal(await ask(worker, "usersCount"), 1);
  assert.deepEqual(await ask(workers[1], "usersList"), ["alice"]);

  socket.disconnect();
  closing = true;
  for (const worker of workers) worker.kill();
  httpServer.close();
  console.log("${OK_MARKER}");
  process.exit(0);
} else {
  const httpServer = createServer();
  const io = new Server(httpServer, { adapter: createAdapter() });
  setupWorker(io);
  const presence = createPresence(io, {
    store: createClusterStore(),
    identify: (socket) => socket.handshake.auth.userId,
  });
  await presence.isUserConnected("alice"); // one round trip to the primary

  const answers = {
    isUserConnected: () => presence.isUserConnected("alice"),
    usersCount: () => presence.usersCount(),
    usersList: () => presence.usersList(),
  };
${WORKER_ANSWERS}
  process.send({ example: "ready" });
}
`,
};

/** @presence/cluster-query: the README's store in 2 cluster workers, each on its own port; a query on one finds alice on the other. */
export const CLUSTER_QUERY: Example = {
  pkg: "@presence/cluster-query",
  readme: [
    `import { createAdapter, setupPrimary } from "@socket.io/cluster-adapter";`,
    `import { createPresence } from "@presence/socketio";`,
    `import { createClusterQueryStore, NodesUnresponsiveError } from "@presence/cluster-query";`,
    `const io = new Server(httpServer, { adapter: createAdapter() });`,
    `const store = createClusterQueryStore(io);`,
    `const presence = createPresence(io, { store, identify: (socket) => socket.handshake.auth.userId });`,
    `const { value, partial, missingNodes } = await store.snapshot({ allowPartial: true });`,
  ],
  imports: [
    { from: "node:cluster", default: "cluster" },
    { from: "node:http", named: ["createServer"] },
    { from: "socket.io", named: ["Server"] },
    { from: "@socket.io/cluster-adapter", named: ["createAdapter", "setupPrimary"] },
    { from: "@presence/socketio", named: ["createPresence"] },
    { from: "@presence/cluster-query", named: ["createClusterQueryStore", "NodesUnresponsiveError"] },
    { from: "socket.io-client", named: ["io as ioClient"] },
  ],
  body: `
${PRIMARY_ASKS}
if (cluster.isPrimary) {
  setupPrimary(); // the cluster adapter's primary (the README leaves the cluster setup to the app)
  const workers = [cluster.fork(), cluster.fork()];
  const [first] = await Promise.all(workers.map(ready));
  const socket = await connected(ioClient(\`http://127.0.0.1:\${first.port}\`, { auth: { userId: "alice" }, reconnection: false }));
  await until("the other worker to find alice by asking the nodes", () => ask(workers[1], "isUserConnected"));
  assert.equal(await ask(workers[1], "usersCount"), 1);
  assert.deepEqual(await ask(workers[1], "usersList"), ["alice"]);
  assert.deepEqual(await ask(workers[1], "snapshot"), { users: ["alice"], partial: false, missingNodes: 0 });

  socket.disconnect();
  for (const worker of workers) worker.kill();
  console.log("${OK_MARKER}");
  process.exit(0);
} else {
  const httpServer = createServer();
  const io = new Server(httpServer, { adapter: createAdapter() });
  const store = createClusterQueryStore(io);
  const presence = createPresence(io, { store, identify: (socket) => socket.handshake.auth.userId });
  httpServer.listen({ port: 0, host: "127.0.0.1", exclusive: true }); // each worker its own port: no sticky needed
  const url = await listening(httpServer);

  const answers = {
    isUserConnected: () => presence.isUserConnected("alice"), // answered locally when alice is here, else asks the others
    usersCount: () => presence.usersCount(), // merges every node's users
    async usersList() {
      try {
        return await store.usersList();
      } catch (error) {
        if (error instanceof NodesUnresponsiveError) throw new Error(\`\${error.missing} nodes did not answer\`);
        throw error;
      }
    },
    async snapshot() {
      const { value, partial, missingNodes } = await store.snapshot({ allowPartial: true });
      return { users: value.map((user) => user.userId), partial, missingNodes };
    },
  };
${WORKER_ANSWERS}
  process.send({ example: "ready", port: Number(new URL(url).port) });
}
`,
};
