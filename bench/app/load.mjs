// One load process of the app benchmark (a child of the coordinator, over
// IPC): its share of the clients, each a socket.io-client socket that keeps
// the views the app shows: the online count, 20 friends, its room.
//   - "off": no views (complete once connected);
//   - "recipe": one list kept from "online users" and the per-user events (a
//     bitset by user index: N clients holding N-entry Sets would not fit);
//   - "events-off", "events-on": three @presence/client views per socket.
// Every Socket.IO packet a client receives is counted (Engine.IO "message"
// packets, Socket.IO's CONNECT excluded), per phase: phase 1 is the first
// storm, phase 2 the reconnect after the server restarted.
//
// Messages in: setup {url, mode, n, users, window} (and the storm begins), phase {phase}, totals, close.
// Messages out: ready, progress, connected {phase, connectAt}, complete {phase, at}, totals {phase, frames, bytes, kinds}.
import { createRequire } from "node:module";
import { io as connect } from "socket.io-client";
import { friendsOf, indexOf, roomMembers, roomOf, userId } from "./population.mjs";

const require = createRequire(import.meta.url);
// @presence/client comes with the demo (it serves it to the page), as in benchmark 6
const { DIFF, STATE, createPresenceClient } = createRequire(require.resolve("@presence/demo/package.json"))("@presence/client");

let setup;
let phase = 1;
let frames = 0;
let bytes = 0;
/** Frames and their bytes by what they carry (a presence scope's state or diff, an ack, a per-user event). */
let kinds = {};
let clients = [];
const counts = { connected: 0, complete: 0, errors: 0, lastError: undefined };
let completeAt = 0;

const send = (message) => process.connected && process.send(message);

/** What a Socket.IO packet (as sent, a string) carries: an ack, a presence frame and its scope, or an event's name. */
function kindOf(data) {
  if (data[0] === "3") return "ack";
  const event = /^2\["([^"]*)"/.exec(data);
  if (!event) return "other";
  if (event[1] !== STATE && event[1] !== DIFF) return event[1];
  // a state is one scope's; a diff packet carries the frames of every scope that changed in the tick (packed: each starts with its key)
  const scopes = [...data.matchAll(/\["(count|users|room)/g)].map((key) => (key[1] === "users" ? "friends" : key[1]));
  return `${event[1] === STATE ? "state" : "diff"} ${scopes.join("+") || "?"}`;
}

/** Counts what reaches the client: every Socket.IO packet but its CONNECT, with its bytes as sent. */
function meter(socket) {
  socket.io.on("open", () =>
    socket.io.engine.on("packet", (packet) => {
      if (packet.type !== "message") return;
      const data = packet.data;
      if (typeof data === "string" && data[0] === "0") return;
      frames++;
      bytes += typeof data === "string" ? data.length : data.byteLength;
      const kind = typeof data === "string" ? kindOf(data) : "binary";
      const seen = (kinds[kind] ??= { frames: 0, bytes: 0 });
      seen.frames++;
      seen.bytes += typeof data === "string" ? data.length : data.byteLength;
    }),
  );
}

/**
 * Keeps this client's views the way `mode` does; calls `changed()` when they may have changed and
 * returns whether they are all complete (the phase's own list read, every user counted).
 */
function keepViews(mode, index, n, socket, changed) {
  const friends = friendsOf(index, n);
  const members = roomMembers(index, n);
  if (mode === "off") return () => true;
  if (mode === "recipe") {
    const friendSet = new Set(friends);
    const room = roomOf(index);
    const online = new Uint8Array(n);
    let size = 0;
    let friendsOnline = 0;
    let roomOnline = 0;
    let listedIn = 0;
    const add = (i, delta) => {
      size += delta;
      if (friendSet.has(i)) friendsOnline += delta;
      if (roomOf(i) === room) roomOnline += delta;
    };
    socket.on("online users", (ids) => {
      online.fill(0);
      size = friendsOnline = roomOnline = 0;
      for (const id of ids) {
        const i = indexOf(id);
        if (online[i]) continue;
        online[i] = 1;
        add(i, +1);
      }
      listedIn = phase;
      changed();
    });
    socket.on("user has connected", (id) => {
      const i = indexOf(id);
      if (online[i]) return;
      online[i] = 1;
      add(i, +1);
      changed();
    });
    socket.on("user has disconnected", (id) => {
      const i = indexOf(id);
      if (!online[i]) return;
      online[i] = 0;
      add(i, -1);
    });
    return () => listedIn === phase && size === n && friendsOnline === friends.length && roomOnline === members.length;
  }
  // the answer to a subscribe may wait minutes behind this process's backlog (see the connect timeout
  // below): a client that asked again after its default 30 s would read a second state for nothing
  const timeoutMs = 600_000;
  const count = createPresenceClient(socket, { countOnly: true, timeoutMs });
  const friendView = createPresenceClient(socket, { userIds: friends.map(userId), timeoutMs });
  const roomView = createPresenceClient(socket, { room: roomOf(index), timeoutMs });
  for (const view of [count, friendView, roomView]) {
    // a state that changes nothing fires no "sync": its "subscribed" state does
    view.on("sync", changed);
    view.on("state", changed);
    view.on("error", (error) => noteError(`presence client: ${error.code} ${error.reason}: ${error.message}`));
  }
  return () => count.synced && friendView.synced && roomView.synced && count.count === n && friendView.count === friends.length && roomView.count === members.length;
}

function noteError(message) {
  counts.errors++;
  counts.lastError = message;
}

/** Opens the k-th client of this process; calls `opened()` at its first connect. */
function open(k, opened) {
  const { url, mode, n, users } = setup;
  const index = users[k];
  const socket = connect(url, {
    auth: { userId: userId(index) },
    transports: ["websocket"],
    forceNew: true,
    // a restarted server is back within a second: the clients come back in a storm, not over several seconds
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    // this process shares two cores with the server and decodes what N browsers would: it may lag far
    // behind a real client, and that lag is not the server's (see the server's pingTimeout)
    timeout: 120_000,
  });
  const client = { socket, connectedIn: 0, completeIn: 0, connectAt: [0, 0, 0] };
  clients[k] = client;
  meter(socket);
  let complete = () => false;
  const check = () => {
    if (client.completeIn === phase || client.connectedIn !== phase || !complete()) return;
    client.completeIn = phase;
    completeAt = Math.max(completeAt, Date.now());
    if (++counts.complete === users.length) send({ type: "complete", phase, at: completeAt });
  };
  complete = keepViews(mode, index, n, socket, check);
  socket.on("connect", () => {
    if (client.connectedIn !== phase) {
      client.connectedIn = phase;
      client.connectAt[phase] = Date.now();
      if (phase === 1) opened();
      if (++counts.connected === users.length) {
        send({ type: "connected", phase, connectAt: clients.map((c) => c.connectAt[phase]) });
      }
    }
    check();
  });
  socket.on("connect_error", (error) => noteError(`connect_error: ${error.message}`));
  let restarted = false;
  socket.on("disconnect", (reason) => {
    // expected once per client, when the server is restarted; anything else is worth saying
    if (phase === 2 && reason === "transport close" && !restarted) restarted = true;
    else noteError(`disconnect in phase ${phase}: ${reason}`);
  });
}

/** Opens this process's clients, at most `window` handshakes in flight. */
function storm() {
  const { users, window } = setup;
  let next = 0;
  let inFlight = 0;
  const launch = () => {
    while (inFlight < window && next < users.length) {
      inFlight++;
      open(next++, () => {
        inFlight--;
        launch();
      });
    }
  };
  launch();
}

let ticker;
process.on("message", (message) => {
  switch (message.type) {
    case "setup":
      setup = message;
      clients = new Array(message.users.length);
      ticker = setInterval(() => send({ type: "progress", phase, frames, ...counts }), 1000);
      return storm();
    case "phase":
      // the first storm is over: what it delivered is reported, and the next connect of every client is phase 2's
      send({ type: "totals", phase, frames, bytes, kinds });
      phase = message.phase;
      frames = bytes = 0;
      kinds = {};
      counts.connected = counts.complete = 0;
      completeAt = 0;
      return;
    case "totals":
      return void send({ type: "totals", phase, frames, bytes, kinds });
    case "close":
      clearInterval(ticker);
      for (const client of clients) client?.socket.close();
      // sockets are closed by the time the next turn runs their writes
      return void setTimeout(() => process.exit(0), 100);
  }
});
process.on("disconnect", () => process.exit(0)); // the coordinator is gone: so are its clients
process.on("SIGTERM", () => process.exit(0)); // an exit of its own, so that a --cpu-prof profile is written
send({ type: "ready" });
