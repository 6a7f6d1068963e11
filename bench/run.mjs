// pnpm bench: runs every benchmark against its peer in the same run, writes
// results/latest.json and results/latest.md, and puts the table into the
// README's Performance section.
//   node run.mjs [--smoke] [--only 1,3] [--no-readme]
//   node run.mjs --render    (rewrites the table and README from results/latest.json, running nothing)
// A full run with --only keeps the other benchmarks' rows of results/latest.json
// (each row says when and with which command it was measured), so that
// --render can put them all into the README.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";
import { startRedisServer } from "@presence/redis/testing";
import { withDeadline } from "./lib/deadline.mjs";
import { appEndToEnd } from "./app/app-presence.mjs";
import { authorizeCost } from "./authorize.mjs";
import { cleanupAtScale } from "./cleanup.mjs";
import { clusterSharding } from "./cluster-sharding.mjs";
import { clusterQueryLatency } from "./cluster-query.mjs";
import { endToEnd } from "./end-to-end.mjs";
import { redisMemory } from "./redis-memory.mjs";
import { storeThroughput } from "./store-throughput.mjs";
import { syncEndToEnd } from "./sync-end-to-end.mjs";

const { values } = parseArgs({
  options: {
    smoke: { type: "boolean", default: false },
    only: { type: "string" },
    "no-readme": { type: "boolean", default: false },
    render: { type: "boolean", default: false },
  },
});
const smoke = values.smoke;
const only = values.only ? new Set(values.only.split(",").map(Number)) : undefined;

const benchmarks = [
  [1, storeThroughput],
  [2, cleanupAtScale],
  [3, clusterQueryLatency],
  [4, endToEnd],
  [5, redisMemory],
  [6, syncEndToEnd],
  [7, appEndToEnd],
  [8, authorizeCost],
  [9, clusterSharding],
];

const fmt = (n) => (n >= 100 ? Math.round(n).toLocaleString("en") : n >= 10 ? n.toFixed(1) : n >= 0.1 ? n.toFixed(2) : n.toPrecision(2));
const cell = (s) => (s ? `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})` : "");

const here = fileURLToPath(new URL(".", import.meta.url));
const rows = [];
let measuredAt = new Date();
const command = values.render ? undefined : only ? `node bench/run.mjs --only ${[...only].join(",")}` : "npx --yes pnpm@10 bench";
const idOf = (row) => Number(row.bench.split(".")[0]);
/** The rows of results/latest.json, each with when and how it was measured (older files say it once for all). */
function savedRows() {
  let saved;
  try {
    saved = JSON.parse(readFileSync(`${here}results/latest.json`, "utf8"));
  } catch {
    return [];
  }
  return saved.rows.map((row) => ({ measuredAt: saved.date, command: "npx --yes pnpm@10 bench", ...row }));
}
const kept = values.render ? savedRows() : only && !smoke ? savedRows().filter((row) => !only.has(idOf(row))) : [];
if (values.render) {
  rows.push(...kept);
  measuredAt = new Date(Math.max(...kept.map((row) => Date.parse(row.measuredAt))));
}
/**
 * A backstop for each benchmark as a whole (each also puts a deadline on every
 * wait of its own): a run that stalls fails with a message instead of hanging.
 */
const BENCH_MS = smoke ? 300_000 : 3 * 3_600_000;
const redis = values.render ? undefined : await withDeadline(startRedisServer(), 30_000, "redis-server to start");
let failed = false;
try {
  for (const [id, bench] of benchmarks) {
    if (values.render || (only && !only.has(id))) continue;
    const started = Date.now();
    console.error(`${id}. ${bench.name}: running${smoke ? " (smoke)" : ""}`);
    const result = await withDeadline(bench({ smoke, redis }), BENCH_MS, `benchmark ${id} (${bench.name})`);
    for (const row of result) {
      row.measuredAt = measuredAt.toISOString();
      row.command = command;
      row.ratio = row.theirs ? row.ours.median / row.theirs.median : null;
      rows.push(row);
      console.log(
        `${row.bench} | ${row.subject}: ${cell(row.ours)} ${row.unit}` +
          (row.theirs ? ` | ${row.peer}: ${cell(row.theirs)} | ratio ${fmt(row.ratio)}` : ""),
      );
    }
    console.log(`   (${((Date.now() - started) / 1000).toFixed(1)} s)`);
  }
} catch (error) {
  failed = true;
  console.error(`bench failed: ${error.stack ?? error}`);
} finally {
  await withDeadline(redis?.stop() ?? Promise.resolve(), 15_000, "redis-server to stop").catch((error) => console.error(error.message));
}
// a benchmark that failed may have left clients or children behind: do not wait for them, but keep
// what the others measured (results/partial.json), so a long run is never lost to its last benchmark
if (failed) {
  mkdirSync(`${here}results`, { recursive: true });
  writeFileSync(`${here}results/partial.json`, `${JSON.stringify({ date: measuredAt.toISOString(), smoke, rows }, null, 2)}\n`);
  console.error("kept what was measured in bench/results/partial.json");
  process.exit(1);
}

if (!values.render && kept.length) {
  rows.push(...kept);
  rows.sort((a, b) => idOf(a) - idOf(b)); // stable: each benchmark's rows keep their order
}
const machine = `${cpus().length} × ${cpus()[0]?.model ?? "cpu"}, Node.js ${process.version}${smoke ? " (smoke run: small N)" : ""}`;
const table = [
  "| benchmark | ours | peer | metric | ours: median (min–max) | peer: median (min–max) | ours ÷ peer |",
  "|---|---|---|---|---|---|---|",
  ...rows.map((r) =>
    `| ${r.bench} | ${r.subject} | ${r.peer} | ${r.unit}${r.lowerIsBetter ? " (lower is better)" : ""} | ${cell(r.ours)} | ${cell(r.theirs)} | ${r.ratio === null ? "" : `${fmt(r.ratio)}×`} |`,
  ),
].join("\n");

mkdirSync(`${here}results`, { recursive: true });
const name = smoke ? "smoke" : "latest";
if (!values.render) {
  writeFileSync(`${here}results/${name}.json`, `${JSON.stringify({ date: measuredAt.toISOString(), smoke, machine, rows }, null, 2)}\n`);
}
writeFileSync(`${here}results/${name}.md`, `${table}\n`);
console.log(`\n${table}\n\nwrote bench/results/${name}.json and bench/results/${name}.md`);

/** "Measured 2026-12-02 with `...`", or one clause per date and command when the rows were measured apart. */
function measuredLine() {
  const groups = new Map();
  for (const row of rows) {
    const key = `${(row.measuredAt ?? measuredAt.toISOString()).slice(0, 10)} with \`${row.command ?? command}\``;
    if (!groups.has(key)) groups.set(key, new Set());
    groups.get(key).add(idOf(row));
  }
  if (groups.size === 1) return `Measured ${[...groups.keys()][0]}`;
  return `Measured ${[...groups].map(([key, ids]) => `benchmark${ids.size > 1 ? "s" : ""} ${[...ids].join(", ")} on ${key}`).join("; ")}`;
}

if (!smoke && !only && !values["no-readme"]) {
  const readme = `${here}../README.md`;
  const text = readFileSync(readme, "utf8");
  const start = "<!-- bench:start -->";
  const end = "<!-- bench:end -->";
  if (text.includes(start) && text.includes(end)) {
    const section = `${start}\n${measuredLine()}; on ${cpus().length} cores (${cpus()[0]?.model ?? "cpu"}), Node.js ${process.version}:\n\n${table}\n${end}`;
    writeFileSync(readme, text.slice(0, text.indexOf(start)) + section + text.slice(text.indexOf(end) + end.length));
    console.log("updated the README's Performance section");
  }
}
