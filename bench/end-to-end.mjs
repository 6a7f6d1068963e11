// 4. End to end: N socket.io-client connections against the demo with 2
// workers, in cluster and redis mode, vs the same server with presence off:
// connection rate, time until /api/presence reports all N users, and the
// workers' memory per connected user.
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createInterface } from "node:readline";
import { io as connect } from "socket.io-client";
import { sleep, summarize } from "./lib/measure.mjs";

const require = createRequire(import.meta.url);
const demoMain = require.resolve("@presence/demo/dist/main.js");

async function startDemo(args) {
  // abuse limits off: every client of the load comes from one address
  const flags = ["--port", "0", "--workers", "2", "--secret", "bench", "--rate-limit", "0", "--max-connections-per-user", "0"];
  const child = spawn(process.execPath, [demoMain, ...flags, ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const lines = createInterface({ input: child.stdout });
  const port = await new Promise((resolve, reject) => {
    lines.on("line", (line) => {
      const match = /localhost:(\d+)/.exec(line);
      if (match) resolve(Number(match[1]));
    });
    child.once("exit", (code) => reject(new Error(`demo exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

/** Resident memory of the demo's workers, in bytes. */
function workersRss(primaryPid) {
  const pids = execFileSync("pgrep", ["-P", String(primaryPid)], { encoding: "utf8" }).split("\n").filter(Boolean);
  return pids.reduce((sum, pid) => sum + Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))[1]) * 1024, 0);
}

const log = (...args) => process.env.BENCH_DEBUG && console.error(new Date().toISOString(), ...args);

async function runOnce(args, n, withPresence) {
  const demo = await startDemo(args);
  log("started", args.join(" "));
  const tokens = [];
  for (let i = 0; i < n; i += 100) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(100, n - i) }, async (_, j) => {
        const res = await fetch(`${demo.url}/api/login`, { method: "POST", body: JSON.stringify({ userId: `user-${i + j}` }) });
        return (await res.json()).token;
      }),
    );
    tokens.push(...batch);
  }
  log("logged in", tokens.length);
  await sleep(300);
  const rssBefore = workersRss(demo.child.pid);
  const started = Date.now();
  const sockets = [];
  for (let i = 0; i < n; i += 100) {
    sockets.push(
      ...(await Promise.all(
        tokens.slice(i, i + 100).map(
          (token) =>
            new Promise((resolve, reject) => {
              const socket = connect(demo.url, { auth: { token }, transports: ["websocket"], reconnection: false, forceNew: true });
              socket.once("connect", () => resolve(socket));
              socket.once("connect_error", reject);
            }),
        ),
      )),
    );
  }
  const connectedMs = Date.now() - started;
  log("connected", sockets.length, connectedMs);
  let reportedMs = null;
  if (withPresence) {
    for (;;) {
      const body = await (await fetch(`${demo.url}/api/presence`)).json();
      if (body.count === n) break;
      await sleep(10);
    }
    reportedMs = Date.now() - started;
  }
  await sleep(300);
  const rssPerUser = (workersRss(demo.child.pid) - rssBefore) / n;
  for (const socket of sockets) socket.close();
  demo.child.kill("SIGTERM");
  await once(demo.child, "exit");
  return { rate: (n / connectedMs) * 1000, reportedMs, rssPerUser };
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
      { bench, subject: "presence on", peer, unit: "worker RSS bytes/user", lowerIsBetter: true, ours: summarize(on.map((r) => r.rssPerUser)), theirs: summarize(off.map((r) => r.rssPerUser)) },
      { bench, subject: "presence on", peer: "(first connect to /api/presence reporting all)", unit: "ms until all reported", lowerIsBetter: true, ours: summarize(on.map((r) => r.reportedMs)) },
    );
  }
  return rows;
}
