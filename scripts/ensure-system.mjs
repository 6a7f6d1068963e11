#!/usr/bin/env node
// Before the test command: finds the system pieces the tests use (redis-server,
// redis-cli, Chromium), installs them through Debian's packages when it can
// (as root, with apt-get), and otherwise says exactly what to run. Every wait
// has a deadline.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

const APT_TIMEOUT_MS = 15 * 60_000;
const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

const onPath = (command) => spawnSync("sh", ["-c", `command -v ${command}`], { stdio: "ignore" }).status === 0;
const wanted = [
  { name: "redis-server", have: () => onPath("redis-server") && onPath("redis-cli"), debian: "redis-server", brew: "brew install redis" },
  { name: "chromium", have: () => existsSync(chromiumPath) || onPath("chromium"), debian: "chromium", brew: "brew install --cask chromium (then set CHROMIUM_PATH)" },
];

const missing = wanted.filter((piece) => !piece.have());
if (missing.length === 0) process.exit(0);

const names = missing.map((piece) => piece.debian);
const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
if (isRoot && onPath("apt-get")) {
  console.log(`ensure-system: installing from Debian's packages: ${names.join(" ")}`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  // apt's own progress is long: shown only when it fails
  const apt = (args) => execFileSync("apt-get", args, { stdio: "pipe", env, timeout: APT_TIMEOUT_MS, maxBuffer: 64 * 1024 * 1024 });
  try {
    apt(["update", "-qq"]);
    apt(["install", "-y", "-qq", ...names]);
  } catch (error) {
    console.error(`ensure-system: apt-get failed (${error.message})\n${String(error.stdout ?? "").slice(-2000)}${String(error.stderr ?? "").slice(-2000)}`);
  }
}

const still = missing.filter((piece) => !piece.have());
if (still.length === 0) process.exit(0);
console.error("ensure-system: the tests need these and they are not installed:");
for (const piece of still) console.error(`  ${piece.name}`);
console.error("Install them, then run the test command again:");
console.error(`  Debian/Ubuntu: sudo apt-get install -y ${still.map((piece) => piece.debian).join(" ")}`);
for (const piece of still) console.error(`  macOS:         ${piece.brew}`);
process.exit(1);
