// The app's one Socket.IO server (a child of the benchmark, over IPC), in one
// of four modes:
//   off         no presence: the app alone (it joins each socket to its room)
//   recipe      the classic recipe: a Map counting connections, io.emit per
//               transition, and usersList() sent to each socket as it connects
//               (what a client keeping the list from the events starts from)
//   events-off  @presence/socketio with rooms tracked and `events: false`
//   events-on   the same with the per-user events on (the default)
//   authorize-off  events-off with an allow-all `authorize` (benchmark 8's baseline)
//   authorize-on   events-off with the app's own `authorize`: a room to its
//               members, a user list to the user's friends, the count to an
//               identified user (benchmark 8)
// Both authorize modes count the hook's calls (reported with the stats).
// It loads everything, then waits to be told to listen, so that its idle
// memory and CPU are read before any client comes. On SIGTERM it exits at
// once, as an app with no shutdown handler does: a rolling restart replaces
// the process, and the clients find the next one.
//   node server.mjs <mode> [N]   (N: the population, for the friends the authorize-on hook allows)
import { createServer } from "node:http";
import { Server } from "socket.io";
import { createPresence } from "@presence/socketio";
import { MemoryStore } from "@presence/memory";
import { createRecipe } from "../recipe/standalone.mjs";
import { ROOM_PREFIX, friendsOf, indexOf, roomOf, userId } from "./population.mjs";

const mode = process.argv[2];
if (!["off", "recipe", "events-off", "events-on", "authorize-off", "authorize-on"].includes(mode)) throw new Error(`unknown mode ${mode}`);
const population = Number(process.argv[3] ?? 0);

const http = createServer((req, res) => void (req.url.startsWith("/socket.io/") || res.writeHead(404).end()));
// the load processes share two cores with this server and decode what N browsers would: under the
// per-user events they fall minutes behind a real client (pings queued behind millions of frames),
// so the lag a real client never has is not taken for a dead client (Socket.IO's defaults: 20 s and 45 s)
const io = new Server(http, { pingTimeout: 600_000, connectTimeout: 600_000 });
const userIdOf = (socket) => socket.handshake.auth.userId;

if (mode === "off" || mode === "recipe") {
  // the bench trusts the id the client names; a real app verifies a token here
  io.use((socket, next) => next(typeof userIdOf(socket) === "string" ? undefined : new Error("unauthorized")));
}
if (mode === "recipe") {
  const { users, handleConnection, handleDisconnection } = createRecipe();
  io.on("connection", (socket) => {
    const userId = userIdOf(socket);
    if (handleConnection(userId)) io.emit("user has connected", userId);
    socket.emit("online users", [...users.keys()]);
    socket.on("disconnect", () => {
      if (handleDisconnection(userId)) io.emit("user has disconnected", userId);
    });
  });
}
/** The hook's calls, to prove that every subscribe went through it. */
let authorizeCalls = 0;
/**
 * The app's own rules, as an app writes them (async, as a lookup would be): a room only to its
 * members, a user list only to the user's friends, the count to any identified user.
 */
async function authorizeByTheApp(socket, scope) {
  authorizeCalls++;
  const me = userIdOf(socket);
  if (typeof me !== "string") return false;
  if (scope.type === "room") return socket.rooms.has(scope.room);
  if (scope.type === "users") {
    const friends = new Set(friendsOf(indexOf(me), population).map(userId));
    return scope.userIds.every((id) => friends.has(id));
  }
  return true; // "count" and "all"
}
function allowAll() {
  authorizeCalls++;
  return true;
}
if (mode.startsWith("authorize-") && !(population > 0)) throw new Error(`${mode} needs the population N as its second argument`);
if (mode !== "off" && mode !== "recipe") {
  const presence = createPresence(io, {
    store: new MemoryStore(),
    identify: userIdOf,
    rooms: ROOM_PREFIX,
    ...(mode === "events-on" ? {} : { events: false }),
    ...(mode === "authorize-on" ? { authorize: authorizeByTheApp } : mode === "authorize-off" ? { authorize: allowAll } : {}),
  });
  presence.on("error", (error) => console.error(`presence error: ${error.message}`));
}
// the app's own code: each socket joins its room
io.on("connection", (socket) => socket.join(roomOf(indexOf(userIdOf(socket)))));

process.on("SIGTERM", () => process.exit(0)); // at once, as with no handler (and --cpu-prof still writes its profile)
process.on("disconnect", () => process.exit(0)); // the benchmark is gone: no server is left behind
process.on("message", (message) => {
  switch (message.type) {
    case "listen":
      http.listen(message.port, "127.0.0.1", () => process.send({ type: "listening", port: http.address().port, at: Date.now() }));
      return;
    case "stats":
      return void process.send({ type: "stats", cpu: process.cpuUsage(), rss: process.memoryUsage.rss(), clients: io.engine.clientsCount, authorizeCalls });
    case "heap":
      // what the server holds for good, garbage aside (run with --expose-gc; asked once the CPU and RSS are read)
      globalThis.gc?.();
      return void process.send({ type: "heap", heap: globalThis.gc ? process.memoryUsage().heapUsed : null });
  }
});
http.on("error", (error) => {
  console.error(`the ${mode} server cannot listen: ${error.message}`);
  process.exit(1);
});
process.send({ type: "ready" });
