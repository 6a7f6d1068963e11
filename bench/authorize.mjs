// 8. Authorization's cost (issue 21): the connection rate of one Socket.IO
// server with @presence/socketio and the app's own `authorize(socket, scope)`
// hook, against the same server with an allow-all hook, the same N clients
// and the same client library (socket.io-client and @presence/client).
// Benchmark 7's app (bench/app): one server process, the clients in niced
// load processes of their own, each client following three scopes that the
// hook decides (the online count, its 20 friends as a user list, the room of
// about 50 it is in); per-user events off, as an app using @presence/client
// sets them. The app's hook (async, as a lookup would be): a room to its
// members only, a user list to the user's friends only, the count to an
// identified user. Both hooks count their calls: the server reports them once
// every view is complete, and a run whose hook was not called for every
// scope of every client fails. Runs interleave: off, on, off, on, ...
//   node bench/authorize.mjs [N]      runs it alone and prints the rows
import { fileURLToPath } from "node:url";
import { describe, openFilesLimit, runOnce } from "./app/app-presence.mjs";
import { ROOM_SIZE } from "./app/population.mjs";
import { summarize } from "./lib/measure.mjs";

const self = fileURLToPath(import.meta.url);
/** The scopes each client follows (count, friends, room): the hook's calls per connection at least. */
const SCOPES_PER_CLIENT = 3;

const MODES = [
  ["authorize-off", "allow-all authorize"],
  ["authorize-on", "the app's authorize (room members, friends, identified)"],
];

export async function authorizeCost({ smoke }) {
  const n = Number(process.env.BENCH_AUTH_CLIENTS ?? (smoke ? 100 : 2000));
  const runs = Number(process.env.BENCH_AUTH_RUNS ?? (smoke ? 1 : 5));
  if (!(n > ROOM_SIZE && runs >= 1)) throw new Error(`BENCH_AUTH_CLIENTS must be over ${ROOM_SIZE} and BENCH_AUTH_RUNS at least 1`);
  if (n + 64 > openFilesLimit()) throw new Error(`${n.toLocaleString("en")} clients do not fit this machine's open-file limit (ulimit -Hn)`);
  const profileDir = process.env.BENCH_AUTH_CPU_PROF;
  const options = {
    loadCount: Math.max(2, Math.ceil(n / 5000)),
    window: 50,
    settleMs: smoke ? 300 : 2_000,
    idleMs: smoke ? 100 : 1_000,
    execArgv: profileDir ? ["--cpu-prof", `--cpu-prof-dir=${profileDir}`] : [],
    restart: false,
  };
  const results = Object.fromEntries(MODES.map(([mode]) => [mode, []]));
  for (let run = 1; run <= runs; run++) {
    for (const [mode] of MODES) {
      const [storm] = await runOnce(mode, n, options);
      // proof that the hook ran: one call per scope per client (a resubscribe would add some)
      if (!(storm.authorizeCalls >= SCOPES_PER_CLIENT * n)) {
        throw new Error(`${mode}: authorize was called ${storm.authorizeCalls} times for ${n} clients of ${SCOPES_PER_CLIENT} scopes each`);
      }
      results[mode].push(storm);
      console.error(`   ${mode} (run ${run} of ${runs}): ${describe(storm)}, ${storm.authorizeCalls.toLocaleString("en")} authorize calls`);
    }
  }
  const bench = `8. authorization, ${n.toLocaleString("en")} clients (count, 20 friends, room), one server`;
  const [[, peer], [on, subject]] = MODES;
  const pair = (unit, pick, lowerIsBetter) => ({
    bench,
    subject,
    peer,
    unit,
    ...(lowerIsBetter ? { lowerIsBetter } : {}),
    ours: summarize(results[on].map(pick)),
    theirs: summarize(results["authorize-off"].map(pick)),
  });
  return [
    pair("connections/s", (s) => s.rate),
    pair("server CPU µs/connection", (s) => s.cpuPerConnection, true),
    pair("authorize calls/connection", (s) => s.authorizeCalls / n),
    pair("ms until every view is complete", (s) => s.completeMs, true),
  ];
}

if (process.argv[1] === self) {
  if (process.argv[2]) process.env.BENCH_AUTH_CLIENTS = process.argv[2];
  for (const row of await authorizeCost({ smoke: false })) {
    const fmt = (s) => `${s.median.toPrecision(4)} (${s.min.toPrecision(4)}–${s.max.toPrecision(4)})`;
    console.log(`${row.bench} | ${row.unit}: ${fmt(row.ours)} | ${row.peer}: ${fmt(row.theirs)} | ratio ${(row.ours.median / row.theirs.median).toFixed(3)}`);
  }
}
