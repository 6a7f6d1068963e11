// 4. End to end: N socket.io-client connections against the demo with 2
// workers, in cluster and redis mode, vs the same server with presence off:
// connection rate, time until /api/presence reports all N users, and the
// workers' memory per connected user, read 2 s after the last connect on
// both sides (with presence on, while /api/presence is still being polled
// if it has not reported all N by then).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { connectWithin, fetchWithin, pollUntil, progress, startProcess, stopProcess } from "./lib/deadline.mjs";
import { sleep, summarize } from "./lib/measure.mjs";

const require = createRequire(import.meta.url);
const demoMain = require.resolve("@presence/demo/dist/main.js");

/** Deadlines: generous for a loaded 2-core machine, yet a stall fails the run instead of hanging it. */
const START_MS = 60_000;
const CONNECT_MS = 30_000;
const REPORTED_MS = 60_000;
const STOP_MS = 15_000;
/** The workers' memory is read this long after the last connect, with presence on and off alike. */
const SETTLE_MS = 2_000;

async function startDemo(args) {
  // abuse limits off: every client of the load comes from one address
  // a secret of the 32 bytes the demo requires (redis mode needs one given)
  const flags = ["--port", "0", "--workers", "2", "--secret", "bench-secret-of-at-least-32-bytes!", "--rate-limit", "0", "--login-rate-limit", "0", "--max-connections-per-user", "0"];
  const { child, match } = await startProcess(process.execPath, [demoMain, ...flags, ...args], {
    ready: /listening on http:\/\/localhost:(\d+)/,
    ms: START_MS,
    name: `the demo (${args.join(" ")})`,
  });
  return { child, url: `http://127.0.0.1:${match[1]}` };
}

async function login(url, userId) {
  const res = await fetchWithin(`${url}/api/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ userId }) }, CONNECT_MS);
  const body = await res.json();
  if (!res.ok || !body.token) throw new Error(`login of ${userId} failed: ${res.status} ${body.error ?? body.message ?? ""}`);
  return body.token;
}

/** Resident memory of the demo's workers, in bytes. */
function workersRss(primaryPid) {
  const pids = execFileSync("pgrep", ["-P", String(primaryPid)], { encoding: "utf8", timeout: 5_000 }).split("\n").filter(Boolean);
  return pids.reduce((sum, pid) => sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024, 0);
}

const log = (...args) => process.env.BENCH_DEBUG && console.error(new Date().toISOString(), ...args);

async function runOnce(args, n, withPresence) {
  const demo = await startDemo(args);
  const name = args.join(" ");
  try {
    log("started", name);
    const tokens = [];
    for (let i = 0; i < n; i += 100) {
      tokens.push(...(await Promise.all(Array.from({ length: Math.min(100, n - i) }, (_, j) => login(demo.url, `user-${i + j}`)))));
    }
    const reader = await login(demo.url, "bench-reader");
    log("logged in", tokens.length);
    await sleep(300);
    const rssBefore = workersRss(demo.child.pid);
    const started = Date.now();
    const sockets = [];
    const report = progress(`end to end, ${name}: clients connected`, n);
    try {
      for (let i = 0; i < n; i += 100) {
        const batch = tokens.slice(i, i + 100).map((token, j) =>
          connectWithin(demo.url, { auth: { token }, transports: ["websocket"] }, CONNECT_MS, `client ${i + j + 1} of ${n} (${name})`),
        );
        // every client of the batch settles (each has its own deadline), so none is left open on a failure
        const settled = await Promise.allSettled(batch);
        sockets.push(...settled.flatMap((r) => (r.status === "fulfilled" ? [r.value] : [])));
        const failed = settled.filter((r) => r.status === "rejected");
        if (failed.length) throw new Error(`${failed.length} of ${batch.length} clients did not connect: ${failed[0].reason.message}`);
        report(sockets.length);
      }
      const connectedAt = Date.now();
      const connectedMs = connectedAt - started;
      log("connected", sockets.length, connectedMs);
      // the same moment for both sides, whatever the presence poll below is doing then
      const rssRead = sleep(SETTLE_MS).then(() => workersRss(demo.child.pid));
      rssRead.catch(() => {}); // awaited below; a poll that fails first must not leave it unhandled
      let reportedMs = null;
      if (withPresence) {
        let count;
        // the presence routes need a signed-in user: a reader, logged in before the clock started
        const headers = { authorization: `Bearer ${reader}` };
        await pollUntil(
          async () => {
            count = (await (await fetchWithin(`${demo.url}/api/presence`, { headers }, CONNECT_MS)).json()).count;
            return count === n;
          },
          { ms: REPORTED_MS, what: `/api/presence to report ${n} users (${name}; last count ${count})` },
        );
        reportedMs = Date.now() - started;
      }
      const rssPerUser = ((await rssRead) - rssBefore) / n;
      return { rate: (n / connectedMs) * 1000, reportedMs, rssPerUser };
    } finally {
      for (const socket of sockets) socket.close();
    }
  } finally {
    await stopProcess(demo.child, STOP_MS, `the demo (${name})`);
  }
}

export async function endToEnd({ smoke, redis }) {
  const n = Number(process.env.BENCH_CLIENTS ?? (smoke ? 100 : 2000));
  const runs = smoke ? 1 : 3;
  const modes = {
    cluster: ["--mode", "cluster"],
    redis: ["--mode", "redis", "--redis-url", redis.url],
  };
  const rows = [];
  for (const [mode, args] of Object.entries(modes)) {
    const on = [];
    const off = [];
    for (let i = 0; i < runs; i++) {
      on.push(await runOnce(args, n, true));
      off.push(await runOnce([...args, "--presence", "off"], n, false));
    }
    const bench = `4. end to end, ${n.toLocaleString("en")} clients, demo ${mode} mode, 2 workers`;
    const peer = "same server, presence off";
    rows.push(
      { bench, subject: "presence on", peer, unit: "connections/s", ours: summarize(on.map((r) => r.rate)), theirs: summarize(off.map((r) => r.rate)) },
      { bench, subject: "presence on", peer, unit: `worker RSS bytes/user, ${SETTLE_MS / 1000} s after the last connect`, lowerIsBetter: true, ours: summarize(on.map((r) => r.rssPerUser)), theirs: summarize(off.map((r) => r.rssPerUser)) },
      { bench, subject: "presence on", peer: "(first connect to /api/presence reporting all)", unit: "ms until all reported", lowerIsBetter: true, ours: summarize(on.map((r) => r.reportedMs)) },
    );
  }
  return rows;
}
