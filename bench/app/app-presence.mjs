// 7. A real app: N clients, each following the online count, 20 friends (a
// user-id list) and the room of about 50 it is in (the app joins it on
// connection), against one Socket.IO server process with a MemoryStore.
// The clients live in several load processes of their own (niced, so that
// they do not starve the server on a small machine, and each under 15,000
// open files). They connect in a storm; then the server process is restarted
// (a rolling restart of a one-process app) and every client reconnects in a
// storm. Interleaved, with the same N and the same client library:
//   - presence off: the same server and app, no presence;
//   - the classic recipe: a Map counting connections, io.emit per transition,
//     usersList() sent at connect; clients keep the list from the events;
//   - @presence/socketio with the per-user events off (`events: false`) and
//     @presence/client views;
//   - the same with the per-user events on (the default).
// Measured per storm: connections/s, server CPU per connection
// (process.cpuUsage from idle to a fixed settle after the last connect),
// server RSS per connection at that moment (minus the idle process), frames
// and bytes each client received beside the minimum its views need, and the
// time from the last connect until every view is complete. See README.md here.
//   node bench/app/app-presence.mjs [N]      runs it alone and prints the rows
//   BENCH_APP_CLIENTS=20000 node bench/run.mjs --only 7
import { fork } from "node:child_process";
import { readFileSync } from "node:fs";
import { setPriority } from "node:os";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { DeadlineError, stopProcess } from "../lib/deadline.mjs";
import { sleep, summarize } from "../lib/measure.mjs";
import { FRIENDS, ROOM_SIZE, arrivalOrder, friendsOf, roomMembers, userId } from "./population.mjs";

const self = fileURLToPath(import.meta.url);
const SERVER = fileURLToPath(new URL("server.mjs", import.meta.url));
const LOAD = fileURLToPath(new URL("load.mjs", import.meta.url));

/** The binding's default `sync.tickMs`: the count view needs one frame per tick at least. */
const TICK_MS = 250;
/** Deadlines: generous for a loaded 2-core machine, yet a stall fails the run with what it awaited. */
const START_MS = 30_000;
const STOP_MS = 15_000;
/**
 * A storm of n clients may take a while: the per-user events make n² frames (at 5,000 on two cores, the
 * recipe's storms take 8 minutes each). A storm fails when no client connected, received a frame or
 * completed its views for STALL_MS, or at this cap (5,000: 22 minutes).
 */
const stormMs = (n) => 60_000 + 40 * n + (n * n) / 20;
const STALL_MS = 120_000;
/** Open files a process needs beyond its sockets (stdio, IPC, the listener, libuv's own). */
const SPARE_FILES = 64;
/** Each load process stays under this many open files. */
const MAX_CLIENTS_PER_LOAD = 15_000;

const MODES = [
  ["off", "presence off"],
  ["recipe", "classic recipe"],
  ["events-off", "ours, per-user events off"],
  ["events-on", "ours, per-user events on"],
];

/** A forked child spoken to over IPC: `next(type)` resolves with its next message of that type. */
function forkChild(file, args, name, execArgv = []) {
  const child = fork(file, args, { stdio: ["ignore", "ignore", "pipe", "ipc"], execArgv });
  const stderr = [];
  createInterface({ input: child.stderr }).on("line", (line) => {
    stderr.push(line);
    if (stderr.length > 20) stderr.shift();
    if (process.env.BENCH_DEBUG) console.error(`[${name}] ${line}`);
  });
  const inbox = [];
  const waiters = [];
  let exited;
  let stopping = false;
  const handle = {
    child,
    name,
    /** The child's last progress report (load processes send one a second). */
    progress: undefined,
    send(message) {
      if (child.connected) child.send(message);
    },
    next(type, what) {
      const found = inbox.findIndex((message) => message.type === type);
      if (found >= 0) return Promise.resolve(inbox.splice(found, 1)[0]);
      if (exited) return Promise.reject(new Error(`${name} exited (${exited}) before ${what}:\n${stderr.join("\n")}`));
      return new Promise((resolve, reject) => waiters.push({ type, what, resolve, reject }));
    },
    /** Rejects if the child exits before `stop()`: a wait on the others fails at once instead of at its deadline. */
    died: new Promise((_, reject) => {
      child.on("exit", (code, signal) => stopping || reject(new Error(`${name} exited (${signal ?? code}) unasked:\n${stderr.join("\n")}`)));
    }),
    stop: () => {
      stopping = true;
      return stopProcess(child, STOP_MS, name);
    },
  };
  handle.died.catch(() => {}); // only awaited during a storm
  child.on("message", (message) => {
    if (message.type === "progress") return void (handle.progress = message);
    const waiter = waiters.findIndex((w) => w.type === message.type);
    if (waiter >= 0) waiters.splice(waiter, 1)[0].resolve(message);
    else inbox.push(message);
  });
  child.on("exit", (code, signal) => {
    exited = signal ?? code;
    for (const waiter of waiters.splice(0)) waiter.reject(new Error(`${name} exited (${exited}) before ${waiter.what}:\n${stderr.join("\n")}`));
  });
  return handle;
}

/** Resolves with `promise`, or rejects after `ms` with what was awaited and where it stood then (`status()`). */
function within(promise, ms, what, status) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`${what} (${status()})`, ms)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Rejects once `moved()` (a number) has not changed for `ms`: a stalled storm fails long before its cap. */
function stalled(moved, ms, what, status) {
  let last = moved();
  let since = Date.now();
  let timer;
  const promise = new Promise((_, reject) => {
    timer = setInterval(() => {
      const now = moved();
      if (now !== last) [last, since] = [now, Date.now()];
      else if (Date.now() - since >= ms) reject(new DeadlineError(`${what}: no client connected, received a frame or completed its views (${status()})`, ms));
    }, 1_000);
  });
  return { promise, stop: () => clearInterval(timer) };
}

/** Starts the server in `mode` (for a population of `n`) and reads its idle stats; it listens once `listen()` says so. */
async function bootServer(mode, n, execArgv, idleMs) {
  const server = forkChild(SERVER, [mode, String(n)], `the ${mode} server`, ["--expose-gc", ...execArgv]);
  try {
    await within(server.next("ready", "it was ready"), START_MS, `the ${mode} server to start`, () => "no ready message");
    await sleep(idleMs);
    const idle = await stats(server);
    return { server, idle: { ...idle, heap: await heap(server) } };
  } catch (error) {
    await server.stop();
    throw error;
  }
}

/** Lets a booted server listen on `port` (0: any); resolves with the port and when it began listening. */
async function listen({ server }, port) {
  server.send({ type: "listen", port });
  const { port: listening, at } = await within(server.next("listening", "it listened"), START_MS, `${server.name} to listen on port ${port}`, () => "no listening message");
  return { port: listening, listeningAt: at };
}

/** The server's heap after a full GC: what it holds for good. */
async function heap(server) {
  server.send({ type: "heap" });
  const { heap } = await within(server.next("heap", "its heap"), START_MS, `${server.name} to report its heap`, () => "no answer over IPC");
  return heap;
}

function stats(server) {
  server.send({ type: "stats" });
  return within(server.next("stats", "its stats"), START_MS, `${server.name} to report its CPU and memory`, () => "no answer over IPC");
}

/** How far the load processes got: clients connected, clients complete, frames received. */
const moved = (loads) => loads.reduce((total, load) => total + (load.progress ? load.progress.connected + load.progress.complete + load.progress.frames : 0), 0);

/** Where the load processes stand, for progress lines and deadline messages. */
function status(loads, n) {
  const p = loads.map((load) => load.progress).filter(Boolean);
  const sum = (key) => p.reduce((total, progress) => total + progress[key], 0);
  const lastError = p.map((progress) => progress.lastError).find(Boolean);
  return `${sum("connected").toLocaleString("en")} of ${n.toLocaleString("en")} clients connected, ${sum("complete").toLocaleString("en")} with every view complete, ${sum("errors")} errors${lastError ? ` (last: ${lastError})` : ""}`;
}

/**
 * One message of `type` from every load process, with a deadline, printing where they stand every 5 s;
 * fails at once if a load process or the `server` given dies.
 */
async function gather(loads, n, type, ms, what, server) {
  const started = Date.now();
  const report = setInterval(() => console.error(`   ${what}: ${status(loads, n)} (${((Date.now() - started) / 1000).toFixed(0)} s)`), 5_000);
  const all = Promise.all(loads.map((load) => load.next(type, what)));
  // a storm (a wait with a server) also fails when it stops moving
  const stall = server ? stalled(() => moved(loads), STALL_MS, what, () => status(loads, n)) : undefined;
  try {
    const died = server?.died.catch((error) => {
      throw new Error(`${what}: ${error.message}`);
    });
    return await within(Promise.race([all, ...(died ? [died, stall.promise] : [])]), ms, what, () => status(loads, n));
  } finally {
    clearInterval(report);
    stall?.stop();
  }
}

/**
 * The frames and bytes a client's views need at least, from the order the
 * clients actually connected in: one state per scope; one diff per friend and
 * per room member who came after the client; the count once per tick while it
 * changed after the client came. Bytes: every id the views list (each friend
 * and room member once, in a state or a diff) and the digits of each count.
 * Means per client, in all and per scope.
 */
function minimumOf(connectAt, n, lastConnect) {
  const sorted = Float64Array.from(connectAt).sort();
  /** How many clients connected after time t (a tie counts as before: it is in the state). */
  const after = (t) => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (sorted[mid] <= t) lo = mid + 1;
      else hi = mid;
    }
    return n - lo;
  };
  const scopes = { count: 0, friends: 0, room: 0 };
  let bytes = 0;
  for (let c = 0; c < n; c++) {
    const t = connectAt[c];
    const later = (i) => connectAt[i] > t;
    const friends = friendsOf(c, n);
    const members = roomMembers(c, n);
    const changes = after(t);
    const ticks = changes === 0 ? 0 : Math.min(changes, Math.ceil((lastConnect - t) / TICK_MS) || 1);
    scopes.count += 1 + ticks;
    scopes.friends += 1 + friends.filter(later).length;
    scopes.room += 1 + members.filter((i) => i !== c && later(i)).length;
    for (const i of [...friends, ...members]) bytes += userId(i).length;
    bytes += String(n - changes).length + ticks * String(n).length;
  }
  for (const scope of Object.keys(scopes)) scopes[scope] /= n;
  return { frames: scopes.count + scopes.friends + scopes.room, bytes: bytes / n, scopes };
}

/** One storm: waits for every client to connect, settles, reads the server, waits for every view. */
async function storm({ phase, mode, n, server, idle, startedAt, loads, settleMs }) {
  const label = `${mode}, ${phase === 1 ? "first storm" : "restart storm"}`;
  const connected = await gather(loads, n, "connected", stormMs(n), `${label}: every client to connect`, server);
  const connectAt = new Float64Array(n);
  connected.forEach((message, l) => message.connectAt.forEach((at, k) => (connectAt[loads[l].users[k]] = at)));
  const lastConnect = connectAt.reduce((a, b) => Math.max(a, b), 0);
  // the same moment relative to the last connect for every mode
  await sleep(lastConnect + settleMs - Date.now());
  const settled = await stats(server);
  const completed = await gather(loads, n, "complete", stormMs(n), `${label}: every client's views to be complete`, server);
  const completeAt = completed.reduce((a, message) => Math.max(a, message.at), 0);
  // every view is complete: every subscribe has been answered (and, in benchmark 8, authorized)
  const { authorizeCalls } = await stats(server);
  const settledHeap = await heap(server);
  const cpuMicros = settled.cpu.user + settled.cpu.system - (idle.cpu.user + idle.cpu.system);
  return {
    rate: (n / Math.max(1, lastConnect - startedAt)) * 1000,
    cpuPerConnection: cpuMicros / n,
    rssPerConnection: (settled.rss - idle.rss) / n,
    heapPerConnection: (settledHeap - idle.heap) / n,
    completeMs: Math.max(0, completeAt - lastConnect),
    authorizeCalls,
    minimum: minimumOf(connectAt, n, lastConnect),
  };
}

async function totals(loads, n, message, what) {
  for (const load of loads) load.send(message);
  const replies = await gather(loads, n, "totals", START_MS, what);
  const kinds = {};
  for (const reply of replies) {
    for (const [kind, { frames, bytes }] of Object.entries(reply.kinds)) {
      const sum = (kinds[kind] ??= { frames: 0, bytes: 0 });
      sum.frames += frames / n;
      sum.bytes += bytes / n;
    }
  }
  return { frames: replies.reduce((a, r) => a + r.frames, 0) / n, bytes: replies.reduce((a, r) => a + r.bytes, 0) / n, kinds };
}

/**
 * One run of `mode` with fresh processes: the first storm, then (unless `restart` is false) the
 * restart storm. Resolves with each storm's figures. Benchmark 8 runs it too.
 */
export async function runOnce(mode, n, options) {
  const { loadCount, window, settleMs, idleMs, execArgv, restart = true } = options;
  const loads = [];
  const servers = [];
  const order = arrivalOrder(n);
  try {
    for (let l = 0; l < loadCount; l++) {
      const loadProfile = process.env.BENCH_APP_LOAD_CPU_PROF;
      const load = forkChild(LOAD, [], `load process ${l + 1} of ${loadCount}`, loadProfile ? ["--cpu-prof", `--cpu-prof-dir=${loadProfile}`] : []);
      // the clients yield to the server: on 2 cores, the server's rate is what is measured
      if (process.env.BENCH_APP_NICE !== "0") setPriority(load.child.pid, 10);
      // each load process takes every loadCount-th arrival: the storm's order is kept across them
      load.users = order.filter((_, k) => k % loadCount === l);
      loads.push(load);
    }
    const [first] = await Promise.all([bootServer(mode, n, execArgv, idleMs), gather(loads, n, "ready", START_MS, `${mode}: the load processes to start`)]);
    servers.push(first);
    const { port } = await listen(first, 0);
    const url = `http://127.0.0.1:${port}`;
    const startedAt = Date.now();
    for (const load of loads) load.send({ type: "setup", url, mode, n, users: load.users, window });
    const storms = [await storm({ phase: 1, mode, n, ...first, startedAt, loads, settleMs })];
    storms[0].received = await totals(loads, n, { type: "phase", phase: 2 }, `${mode}: the load processes' counts of the first storm`);
    if (!restart) return storms;

    // the rolling restart: the next process boots, the old one exits, every client reconnects to the next one
    const next = await bootServer(mode, n, execArgv, idleMs);
    servers.push(next);
    await first.server.stop();
    const { listeningAt } = await listen(next, port);
    storms.push(await storm({ phase: 2, mode, n, ...next, startedAt: listeningAt, loads, settleMs }));
    storms[1].received = await totals(loads, n, { type: "totals" }, `${mode}: the load processes' counts of the restart storm`);
    return storms;
  } finally {
    for (const load of loads) load.send({ type: "close" });
    await Promise.all([...loads.map((load) => load.stop()), ...servers.map(({ server }) => server.stop())]);
  }
}

/** One storm's figures on one line, with the frames (and bytes) each client received by kind beside the minimum per scope. */
export function describe(p) {
  const one = (x) => (x >= 100 ? Math.round(x).toLocaleString("en") : x.toFixed(1));
  const kinds = Object.entries(p.received.kinds)
    .sort((a, b) => b[1].bytes - a[1].bytes)
    .map(([kind, { frames, bytes }]) => `${kind} ${one(frames)} (${one(bytes)} B)`)
    .join(", ");
  const minimum = Object.entries(p.minimum.scopes)
    .map(([scope, count]) => `${scope} ${one(count)}`)
    .join(", ");
  return (
    `${one(p.rate)} connections/s, ${one(p.cpuPerConnection)} µs CPU, ${one(p.rssPerConnection)} B RSS and ${one(p.heapPerConnection)} B live heap per connection, ` +
    `complete ${p.completeMs} ms after the last connect; per client ${one(p.received.frames)} frames (${kinds || "none"}), ` +
    `${one(p.received.bytes)} bytes; minimum ${one(p.minimum.frames)} frames (${minimum}), ${one(p.minimum.bytes)} bytes`
  );
}

/** The most files one process may open (the hard limit: Node raises its soft limit to it). */
export function openFilesLimit() {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
  const hard = line?.split(/\s+/)[4];
  return hard === undefined || hard === "unlimited" ? Infinity : Number(hard);
}

export async function appEndToEnd({ smoke }) {
  const n = Number(process.env.BENCH_APP_CLIENTS ?? (smoke ? 100 : 5000));
  const runs = Number(process.env.BENCH_APP_RUNS ?? (smoke ? 1 : 3));
  const loadCount = Number(process.env.BENCH_APP_LOADS ?? Math.max(2, Math.ceil(n / 5000)));
  const only = process.env.BENCH_APP_MODES?.split(",");
  const modes = MODES.filter(([mode]) => mode === "off" || !only || only.includes(mode));
  if (!(n > ROOM_SIZE && runs >= 1 && loadCount >= 1)) throw new Error(`BENCH_APP_CLIENTS must be over ${ROOM_SIZE}, BENCH_APP_RUNS and BENCH_APP_LOADS at least 1`);
  const limit = openFilesLimit();
  if (n + SPARE_FILES > limit) {
    throw new Error(`${n.toLocaleString("en")} clients need about ${(n + SPARE_FILES).toLocaleString("en")} open files in the one server process; this machine allows ${limit.toLocaleString("en")} per process (ulimit -Hn): use BENCH_APP_CLIENTS=${(limit - SPARE_FILES).toLocaleString("en").replace(/,/g, "")} at most`);
  }
  if (Math.ceil(n / loadCount) > Math.min(MAX_CLIENTS_PER_LOAD, limit - SPARE_FILES)) {
    throw new Error(`${Math.ceil(n / loadCount)} clients per load process is too many open files: raise BENCH_APP_LOADS`);
  }
  const profileDir = process.env.BENCH_APP_CPU_PROF;
  const options = {
    loadCount,
    window: 50,
    settleMs: smoke ? 300 : 2_000,
    idleMs: smoke ? 100 : 1_000,
    execArgv: profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
  };
  const results = Object.fromEntries(modes.map(([mode]) => [mode, []]));
  for (let run = 1; run <= runs; run++) {
    for (const [mode] of modes) {
      const started = Date.now();
      const phases = await runOnce(mode, n, options);
      results[mode].push(phases);
      console.error(`   ${mode} (run ${run} of ${runs}, ${((Date.now() - started) / 1000).toFixed(1)} s):`);
      for (const [i, p] of phases.entries()) console.error(`     ${i ? "restart" : "first"} storm: ${describe(p)}`);
    }
  }

  const rows = [];
  const off = results.off;
  const subjects = modes.slice(1);
  const at = (list, phase, pick) => summarize(list.map((phases) => pick(phases[phase])));
  for (const [phase, storm] of [
    [0, "first storm"],
    [1, "restart storm"],
  ]) {
    const bench = `7. a real app, ${n.toLocaleString("en")} clients (count, ${FRIENDS} friends, room of ${ROOM_SIZE}), one server, ${storm}`;
    const vsOff = (unit, pick, lowerIsBetter) =>
      subjects.map(([mode, subject]) => ({ bench, subject, peer: "presence off", unit, ...(lowerIsBetter ? { lowerIsBetter } : {}), ours: at(results[mode], phase, pick), theirs: at(off, phase, pick) }));
    const vsMinimum = (unit, pick, minimum) =>
      subjects.map(([mode, subject]) => ({ bench, subject, peer: "the minimum the views need", unit, lowerIsBetter: true, ours: at(results[mode], phase, pick), theirs: at(results[mode], phase, minimum) }));
    rows.push(
      ...vsOff("connections/s", (p) => p.rate),
      ...vsOff("server CPU µs/connection", (p) => p.cpuPerConnection, true),
      ...vsOff("server RSS bytes/connection", (p) => p.rssPerConnection, true),
      ...vsOff("server live heap bytes/connection (after a full GC)", (p) => p.heapPerConnection, true),
      ...vsMinimum("frames/client", (p) => p.received.frames, (p) => p.minimum.frames),
      ...vsMinimum("bytes/client", (p) => p.received.bytes, (p) => p.minimum.bytes),
      ...subjects.map(([mode, subject]) => ({
        bench,
        subject,
        peer: "(after the last connect)",
        unit: "ms until every view is complete",
        lowerIsBetter: true,
        ours: at(results[mode], phase, (p) => p.completeMs),
      })),
    );
  }
  return rows;
}

if (process.argv[1] === self) {
  if (process.argv[2]) process.env.BENCH_APP_CLIENTS = process.argv[2];
  for (const row of await appEndToEnd({ smoke: false })) {
    const fmt = (s) => `${s.median.toPrecision(4)} (${s.min.toPrecision(4)}–${s.max.toPrecision(4)})`;
    console.log(`${row.bench} | ${row.subject} | ${row.unit}: ${fmt(row.ours)}${row.theirs ? ` | ${row.peer}: ${fmt(row.theirs)}` : ""}`);
  }
}
