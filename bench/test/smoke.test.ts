import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, it } from "vitest";

const run = fileURLToPath(new URL("../run.mjs", import.meta.url));
const results = fileURLToPath(new URL("../results/smoke.json", import.meta.url));

// Not a timing test: proves every benchmark still runs end to end (small N)
// and reports a figure for itself and its peer.
it("runs every benchmark as a quick smoke", { timeout: 180_000 }, async () => {
  await promisify(execFile)(process.execPath, [run, "--smoke"], { cwd: fileURLToPath(new URL("..", import.meta.url)) });
  const { rows } = JSON.parse(readFileSync(results, "utf8")) as {
    rows: Array<{ bench: string; ours: { median: number }; theirs?: { median: number } }>;
  };
  const benches = new Set(rows.map((row) => row.bench.split(".")[0]));
  expect([...benches].sort()).toEqual(["1", "2", "3", "4", "5", "6", "7", "8", "9"]);
  for (const row of rows) {
    expect(Number.isFinite(row.ours.median), row.bench).toBe(true);
    if (row.theirs) expect(Number.isFinite(row.theirs.median), row.bench).toBe(true);
  }
});
