// 6. Clients that keep the full list of who is online, end to end: N
// socket.io-client connections in a storm against one Socket.IO server
// (a child process, memory store), each keeping the list the way
//   - "events + refetch": today's demo page before @presence/client (fetch
//     /api/presence at connect and again on every "user has connected"),
//   - "events alone": one fetch at connect, then the per-user events,
//   - "diffs": @presence/client (state, then coalesced diffs once per tick),
// beside the same server with presence off. Measured: connection rate, frames
// and bytes delivered to clients (HTTP answers included), and the time from
// the last connect until every client's view is complete. Events + refetch
// makes N² requests: it runs at 200 clients, and so does every other mode
// beside it, so that each comparison has one N; the others run at N too.
//   node sync-end-to-end.mjs [N] [tickMs,...]   runs it alone and prints the rows
import { fork } from "node:child_process";
import { once } from "node:events";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { io as connect } from "socket.io-client";
import { stopProcess, withDeadline } from "./lib/deadline.mjs";
import { summarize } from "./lib/measure.mjs";

/** Deadlines: generous for a loaded 2-core machine, yet a stall fails the run instead of hanging it. */
const START_MS = 30_000;
const CONNECT_MS = 60_000;
const FETCH_MS = 10_000;

const require = createRequire(import.meta.url);
// @presence/client comes with the demo (it serves it to the page)
const fromDemo = createRequire(require.resolve("@presence/demo/package.json"));
const self = fileURLToPath(import.meta.url);

// -- the server (child process) --

async function serve(mode, tickMs) {
  const { Server } = await import("socket.io");
  const { createPresence } = await import("@presence/socketio");
  const { MemoryStore } = await import("@presence/memory");
  let presence;
  const http = createServer(async (req, res) => {
    if (req.url !== "/api/presence") return void (req.url.startsWith("/socket.io/") || res.writeHead(404).end());
    const users = [];
    for await (const page of presence.users({ pageSize: 500 })) users.push(...page.map((u) => u.userId));
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ count: users.length, users }));
  });
  const io = new Server(http);
  if (mode === "off") io.use((socket, next) => next(socket.handshake.auth.userId ? undefined : new Error("unauthorized")));
  else {
    presence = createPresence(io, {
      store: new MemoryStore(),
      identify: (socket) => socket.handshake.auth.userId,
      leaveDelayMs: 0,
      // diffs alone: the per-user events are off, as an app using @presence/client would set them
      events: mode === "diffs" || mode === "bare" ? false : undefined,
      sync: mode === "diffs" ? { tickMs } : false,
    });
  }
  http.listen(0, "127.0.0.1", () => process.send({ port: http.address().port }));
}

if (process.argv[2] === "--serve") await serve(process.argv[3], Number(process.argv[4]));

// -- the clients (this process) --

/** Counts what reaches one client: Socket.IO message frames and their bytes, plus HTTP answers. */
function meter(socket, totals) {
  socket.io.on("open", () =>
    socket.io.engine.on("packet", (packet) => {
      if (packet.type !== "message") return;
      totals.frames++;
      totals.bytes += typeof packet.data === "string" ? packet.data.length : packet.data.byteLength;
    }),
  );
}

/** Keeps one client's view the way `mode` does; calls `complete()` once it lists n users. */
function keepView(mode, socket, url, n, totals, complete) {
  if (mode === "off" || mode === "bare") return complete();
  if (mode === "diffs") {
    const { createPresenceClient } = fromDemo("@presence/client");
    const view = createPresenceClient(socket);
    const check = () => view.count === n && complete();
    view.on("sync", check);
    return;
  }
  const users = new Set();
  const check = () => users.size === n && complete();
  const fetchAll = async () => {
    let text;
    // under the storm a request can fail: a page would try again, so does this
    for (let attempt = 0; text === undefined; attempt++) {
      if (attempt === 10) throw new Error(`GET ${url}/api/presence failed 10 times`);
      text = await fetch(`${url}/api/presence`, { signal: AbortSignal.timeout(FETCH_MS) }).then((res) => res.text(), () => undefined);
      if (text === undefined) await new Promise((resolve) => setTimeout(resolve, Math.min(1000, 50 * 2 ** attempt)));
    }
    totals.frames++;
    totals.bytes += text.length;
    // merged, not replaced: an answer computed before an event that arrived first would undo it
    for (const userId of JSON.parse(text).users) users.add(userId);
    check();
  };
  socket.on("user has connected", (userId) => {
    users.add(userId);
    check();
    if (mode === "refetch") fetchAll().catch(() => {});
  });
  socket.on("user has disconnected", (userId) => users.delete(userId));
  // once connected, as the page did: a user who came before is in the answer, one who comes after is an event
  socket.once("connect", () => fetchAll().catch(() => {}));
}

async function runOnce(mode, n, tickMs) {
  const server = fork(self, ["--serve", mode, String(tickMs)], { stdio: ["ignore", "inherit", "inherit", "ipc"] });
  const [{ port }] = await withDeadline(once(server, "message"), START_MS, `the ${mode} server to listen`, () => server.kill("SIGKILL"));
  const url = `http://127.0.0.1:${port}`;
  const totals = { frames: 0, bytes: 0 };
  const sockets = [];
  try {
    let completed = 0;
    let allComplete;
    const done = new Promise((resolve) => (allComplete = resolve));
    const started = Date.now();
    for (let i = 0; i < n; i += 100) {
      const batch = Array.from({ length: Math.min(100, n - i) }, (_, j) => {
        const socket = connect(url, { auth: { userId: `user-${i + j}` }, transports: ["websocket"], reconnection: false, forceNew: true });
        meter(socket, totals);
        let once = false;
        keepView(mode, socket, url, n, totals, () => {
          if (once) return;
          once = true;
          if (++completed === n) allComplete(Date.now());
        });
        sockets.push(socket);
        const connected = new Promise((resolve, reject) => {
          socket.once("connect", resolve);
          socket.once("connect_error", reject);
        });
        return withDeadline(connected, CONNECT_MS, `client ${i + j + 1} of ${n} (${mode}) to connect`);
      });
      await Promise.all(batch);
    }
    const connectedAt = Date.now();
    const deadline = setTimeout(() => {
      console.error(`sync bench (${mode}): ${n - completed} of ${n} views still incomplete after 60 s`);
      allComplete(undefined);
    }, 60_000);
    const completeAt = await done;
    clearTimeout(deadline);
    const result = {
      rate: (n / (connectedAt - started)) * 1000,
      completeMs: completeAt === undefined ? Number.NaN : Math.max(0, completeAt - connectedAt),
      frames: totals.frames,
      bytes: totals.bytes,
    };
    return result;
  } finally {
    for (const socket of sockets) socket.close();
    await stopProcess(server, 15_000, `the ${mode} server`);
  }
}

/** Events + refetch makes N² HTTP requests carrying N³ user ids: it runs with at most this many clients. */
const REFETCH_MAX_CLIENTS = 200;

const MODES = [
  ["off", "presence off"],
  ...(process.env.BENCH_BARE ? [["bare", "presence on, nothing sent to clients"]] : []),
  ["refetch", "events + refetch (the page before)"],
  ["events", "events alone (one fetch at connect)"],
  ["diffs", "diffs (@presence/client)"],
];

export async function syncEndToEnd({ smoke, tickMs = 250 }) {
  const n = Number(process.env.BENCH_CLIENTS ?? (smoke ? 100 : 2000));
  const runs = smoke ? 1 : 3;
  const only = process.env.BENCH_MODES?.split(",");
  const modes = MODES.filter(([mode]) => mode === "off" || !only || only.includes(mode));
  // every row of a comparison has the same N: events + refetch is compared at its own N, beside
  // every other mode and presence off at that N; the others are compared again at the full N
  const sizes = [...new Set([...(modes.some(([mode]) => mode === "refetch") ? [Math.min(n, REFETCH_MAX_CLIENTS)] : []), n])];
  const modesAt = (size) => modes.filter(([mode]) => mode !== "refetch" || size <= REFETCH_MAX_CLIENTS);
  const results = new Map(sizes.map((size) => [size, Object.fromEntries(modesAt(size).map(([mode]) => [mode, []]))]));
  for (let i = 0; i < runs; i++) {
    for (const size of sizes) for (const [mode] of modesAt(size)) results.get(size)[mode].push(await runOnce(mode, size, tickMs));
  }
  const rows = [];
  for (const size of sizes) {
    const bench = `6. clients keeping the full list, ${size.toLocaleString("en")} clients in a storm, one server, tick ${tickMs} ms`;
    const off = results.get(size).off;
    for (const [mode, subject] of modesAt(size).slice(1)) {
      const ours = results.get(size)[mode];
      rows.push(
        { bench, subject, peer: "presence off", unit: "connections/s", ours: summarize(ours.map((r) => r.rate)), theirs: summarize(off.map((r) => r.rate)) },
        { bench, subject, peer: "(all clients)", unit: "frames delivered", lowerIsBetter: true, ours: summarize(ours.map((r) => r.frames)) },
        { bench, subject, peer: "(all clients)", unit: "bytes delivered", lowerIsBetter: true, ours: summarize(ours.map((r) => r.bytes)) },
        { bench, subject, peer: "(after the last connect)", unit: "ms until every view is complete", lowerIsBetter: true, ours: summarize(ours.map((r) => r.completeMs)) },
      );
    }
  }
  return rows;
}

if (process.argv[1] === self && process.argv[2] !== "--serve") {
  const n = process.argv[2] ?? "2000";
  process.env.BENCH_CLIENTS = n;
  for (const tickMs of (process.argv[3] ?? "250").split(",").map(Number)) {
    for (const row of await syncEndToEnd({ smoke: true, tickMs })) {
      console.log(`${row.subject} | ${row.unit}: ${Math.round(row.ours.median)}${row.theirs ? ` (presence off: ${Math.round(row.theirs.median)})` : ""}`);
    }
  }
}
