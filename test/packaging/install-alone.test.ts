import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { OK_MARKER, missingReadmeLines, render, type ModuleFormat } from "./example-source";
import { CLIENT, CLUSTER, CLUSTER_QUERY, CORE, MEMORY, SOCKETIO, type Example } from "./examples";
import { PACKAGES, cleanEnv, freePort, inPool, progress, run, runOk, startRedis, type ThrowawayRedis } from "./harness";
import {
  installedPackageProblems,
  npmLs,
  npmProject,
  outsideWorkspaceProblems,
  packAll,
  REPO_ROOT,
  readmeInstallSpecs,
  writeExample,
  type Tarball,
} from "./install";
import { REDIS_VARIANTS, type RedisClientVariant } from "./redis-examples";
import {
  RUN_EXPECTATIONS,
  allBlocks,
  diagnosticsByBlock,
  exceptionProblems,
  runBlock,
  writeBlocks,
  type ReadmeBlock,
} from "./readme-blocks";

/**
 * "Installing individual packages from npm": every package packed with pnpm,
 * installed with npm into a fresh project outside the workspace, and each
 * README's example run from there, as ESM and as CommonJS.
 */

const FORMATS: ModuleFormat[] = ["esm", "cjs"];
const INSTALL_AND_RUN_TIMEOUT_MS = 420_000;
/**
 * Off for now: the documented shutdown (`await presence.close()`, then the
 * server closes or a client leaves) prints a PresenceWarning STORE_CLOSED,
 * because the binding sends a socket's disconnect to the store it already
 * closed. On once @presence/socketio ignores disconnects after close().
 */
const FAIL_ON_PRESENCE_WARNING = true;
const EXAMPLE_TIMEOUT_MS = 90_000; // a healthy run takes 1 to 3 s; this is for a loaded machine, and says what hung
const README_INSTALL_CONCURRENCY = 3;
/** What a user installs beside the packages: the peers, and what the README examples import. */
const REGISTRY_PACKAGES = [
  "socket.io",
  "socket.io-client",
  "@socket.io/cluster-adapter",
  "semver",
  // what the README blocks import and are type-checked with (readme-blocks.ts)
  "@socket.io/redis-adapter",
  "ioredis",
  "redis",
  "react",
  "react-dom",
  "@types/react",
  "@types/node@20",
  "typescript@~5.9.3",
  "vitest",
  "fast-check",
];

const state = {} as { root: string; tarballs: Tarball[]; project: string; started: number };

beforeAll(async () => {
  state.started = Date.now();
  state.root = mkdtempSync(join(tmpdir(), "presence-packaging-"));
  progress(`working in ${state.root}`);
  state.tarballs = await packAll(state.root);
  state.project = join(state.root, "app");
  await npmProject(state.project, [...state.tarballs.map((t) => t.file), ...REGISTRY_PACKAGES], "every tarball + peers");
}, INSTALL_AND_RUN_TIMEOUT_MS);

afterAll(() => {
  if (state.root) rmSync(state.root, { recursive: true, force: true });
  if (state.started) progress(`the packaging test took ${((Date.now() - state.started) / 1000).toFixed(1)} s`);
});

function tarball(name: string): Tarball {
  const found = state.tarballs.find((t) => t.name === name);
  if (!found) throw new Error(`no tarball for ${name}`);
  return found;
}

function readme(projectDir: string, pkg: string): string {
  return readFileSync(join(projectDir, "node_modules", ...pkg.split("/"), "README.md"), "utf8");
}

/** Writes the example in one format (`.mjs` or `.cjs`) and runs it with plain `node` from `dir`. */
async function runExample(dir: string, name: string, example: Example, format: ModuleFormat, env: Record<string, string> = {}) {
  const file = writeExample(dir, `${name}.${format === "esm" ? "mjs" : "cjs"}`, render(example, format));
  const started = Date.now();
  const result = await run(process.execPath, [file], {
    cwd: dir,
    what: `the ${example.pkg} example (${format}, ${file})`,
    timeoutMs: EXAMPLE_TIMEOUT_MS,
    env: cleanEnv({ ...env, EXAMPLE_DEADLINE_MS: String(EXAMPLE_TIMEOUT_MS - 5_000) }),
  });
  const output = `exit ${result.code ?? result.signal}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
  expect(result.code, `${example.pkg} example (${format}) failed: ${output}`).toBe(0);
  expect(result.stdout, `${example.pkg} example (${format}) did not reach its end: ${output}`).toContain(OK_MARKER);
  // a warning the example provokes on purpose (a refused token) is expected, once; any other fails
  const warnings = result.stderr.split("\n").filter((line) => line.includes("PresenceWarning"));
  for (const code of example.warns ?? []) expect(warnings.filter((line) => line.includes(code)), `${example.pkg} example (${format}): the ${code} warning, once`).toHaveLength(1);
  const unexpected = warnings.filter((line) => !(example.warns ?? []).some((code) => line.includes(code)));
  if (FAIL_ON_PRESENCE_WARNING) expect(unexpected, `${example.pkg} example (${format}) printed warnings: ${output}`).toEqual([]);
  for (const warning of warnings) progress(`${example.pkg} example as ${format} printed: ${warning.trim()}`);
  progress(`${example.pkg} example as ${format}: ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

describe("every package, installed from its tarball with npm", () => {
  it("lands as real folders from the tarballs, outside the workspace, with every peer satisfied", async () => {
    expect(outsideWorkspaceProblems(state.project)).toEqual([]);
    expect(installedPackageProblems(state.project, state.tarballs)).toEqual([]);
    await npmLs(state.project);
  });

  const examples: [string, Example][] = [
    ["core", CORE],
    ["memory", MEMORY],
    ["socketio", SOCKETIO],
    ["client", CLIENT],
    ["cluster-query", CLUSTER_QUERY],
    ["cluster", CLUSTER],
  ];
  for (const [name, example] of examples) {
    describe(example.pkg, () => {
      it.skipIf(example.readme.length === 0)("its README (from the tarball) shows the example that runs here", () => {
        expect(missingReadmeLines(readme(state.project, example.pkg), example.readme)).toEqual([]);
      });
      for (const format of FORMATS) {
        it(`runs the README example as ${format === "esm" ? "ESM" : "CommonJS"}`, () => runExample(state.project, name, example, format), EXAMPLE_TIMEOUT_MS + 10_000);
      }
    });
  }
});

/**
 * Issue 14's own report, still true while the packed peer range is exactly
 * this: `npm i @presence/redis ioredis` is refused (ioredis 6 is the latest).
 * Only this exact case is let through (as a skip that says so); once the
 * range changes, the README's install command must work.
 */
const KNOWN_PEER_GAP = { pkg: "@presence/redis", peer: "ioredis", range: "^5.3.0" };

describe("each README's install command, in a fresh project", () => {
  /** Each package's install, run side by side (npm mostly waits on the registry and its cache) before the checks below. */
  const outcomes = new Map<string, { skipped: string } | { error: unknown } | { ok: true }>();
  beforeAll(async () => {
    await inPool(PACKAGES, README_INSTALL_CONCURRENCY, async (dir) => {
      const name = `@presence/${dir}`;
      let text: string;
      try {
        text = readme(state.project, name);
      } catch {
        outcomes.set(name, { skipped: `${name} has no README.md in its tarball` });
        return;
      }
      const specs = readmeInstallSpecs(text, state.tarballs);
      if (specs === undefined) {
        outcomes.set(name, { error: new Error(`${name}'s README has no "npm install ..." line`) });
        return;
      }
      const project = join(state.root, `readme-install-${dir}`);
      try {
        await npmProject(project, specs, `${name}'s README install command`);
        await npmLs(project);
        outcomes.set(name, { ok: true });
      } catch (error) {
        outcomes.set(name, { error });
      }
    });
  }, INSTALL_AND_RUN_TIMEOUT_MS);

  for (const dir of PACKAGES) {
    const name = `@presence/${dir}`;
    it(`${name}: npm installs what the README says, and npm ls is clean`, (context) => {
      const outcome = outcomes.get(name);
      if (outcome === undefined) throw new Error(`${name}'s README install did not run`);
      if ("skipped" in outcome) return context.skip(outcome.skipped);
      if ("ok" in outcome) return;
      const message = String(outcome.error);
      const range = JSON.parse(readFileSync(join(state.project, "node_modules", ...name.split("/"), "package.json"), "utf8"))
        .peerDependencies?.[KNOWN_PEER_GAP.peer] as string | undefined;
      // npm either refuses (ERESOLVE) or installs the latest anyway and `npm ls` calls it invalid
      const refused = message.includes("ERESOLVE") || message.includes(`invalid: ${KNOWN_PEER_GAP.peer}@`);
      if (name === KNOWN_PEER_GAP.pkg && range === KNOWN_PEER_GAP.range && refused) {
        progress(`KNOWN (issue 14): ${name}'s README install is refused or invalid: peer ${KNOWN_PEER_GAP.peer}@"${range}" excludes the latest release`);
        return context.skip(`known (issue 14): peer ${KNOWN_PEER_GAP.peer}@"${range}" excludes the latest ${KNOWN_PEER_GAP.peer}; the README's install is refused or invalid`);
      }
      throw outcome.error;
    });
  }
});

describe("@presence/redis with each supported client", () => {
  let redis: ThrowawayRedis | undefined;
  afterAll(async () => {
    await redis?.stop();
  });

  for (const variant of REDIS_VARIANTS) {
    const label = `${variant.client} ${variant.major}`;
    it(
      `installs with ${label} and runs the README example as ESM and CommonJS`,
      async (context) => {
        const range = peerRange(variant);
        if (!admits(range, variant.major)) {
          context.skip(`@presence/redis's peer range for ${variant.client} is ${range ?? "absent"}: ${label} is not supported`);
          return;
        }
        const dir = join(state.root, `redis-with-${variant.client}-${variant.major}`);
        const specs = ["@presence/core", "@presence/socketio", "@presence/redis"].map((name) => tarball(name).file);
        await npmProject(dir, [...specs, "socket.io", "socket.io-client", "@socket.io/redis-adapter", `${variant.client}@${variant.major}`], `@presence/redis with ${label}`);
        await npmLs(dir);
        const installed = createRequire(join(dir, "package.json"))(`${variant.client}/package.json`) as { version: string };
        expect(installed.version.split(".")[0], `npm installed ${variant.client}@${installed.version} for ${label}`).toBe(String(variant.major));
        expect(missingReadmeLines(readme(dir, "@presence/redis"), variant.example.readme)).toEqual([]);

        redis ??= await startRedis();
        for (const format of FORMATS) {
          await runExample(dir, `redis-${variant.client}`, variant.example, format, { REDIS_URL: redis.url });
          await flushRedis(redis.url, dir); // the next run starts from an empty deployment
        }
      },
      INSTALL_AND_RUN_TIMEOUT_MS,
    );
  }
});


/** The peer range `@presence/redis` (as packed) declares for this client, if any. */
function peerRange(variant: RedisClientVariant): string | undefined {
  const manifest = JSON.parse(readFileSync(join(state.project, "node_modules", "@presence", "redis", "package.json"), "utf8")) as {
    peerDependencies?: Record<string, string>;
  };
  return manifest.peerDependencies?.[variant.client];
}

/** Whether `range` admits some version of `major`, by the registry's own semver (installed in the project). */
function admits(range: string | undefined, major: number): boolean {
  if (range === undefined) return false;
  const semver = createRequire(join(state.project, "package.json"))("semver") as {
    intersects(a: string, b: string): boolean;
  };
  return semver.intersects(range, `^${major}.0.0`);
}

async function flushRedis(url: string, cwd: string): Promise<void> {
  const port = new URL(url).port;
  await run("redis-cli", ["-p", port, "FLUSHALL"], { cwd, what: "redis-cli FLUSHALL", timeoutMs: 15_000 });
}

/**
 * Issue 24: every code block of every README (the root's, apps/*, packages/*),
 * exactly as written, each its own file in the fresh project: type-checked
 * with tsc under strict settings against the installed tarballs, then run
 * unless marked otherwise (readme-blocks.ts has the rule and its exceptions).
 */
describe("every README code block, as written", () => {
  const blocks = allBlocks(REPO_ROOT);
  const TSC_TIMEOUT_MS = 180_000;
  const BLOCK_DEADLINE_MS = 60_000;
  const BLOCK_GRACE_MS = 1_500; // a server keeps serving this long after its block's end, with nothing on stderr
  const checked = {} as { dir: string; diagnostics: Map<ReadmeBlock, string[]>; tscExit: number | null; tscOutput: string };
  let redis: ThrowawayRedis | undefined;

  beforeAll(async () => {
    checked.dir = join(state.project, "readme-blocks");
    writeBlocks(checked.dir, blocks);
    const tsc = join(state.project, "node_modules", "typescript", "bin", "tsc");
    const started = Date.now();
    const result = await run(process.execPath, [tsc, "--noEmit", "-p", "."], { cwd: checked.dir, what: "tsc --noEmit over the README blocks", timeoutMs: TSC_TIMEOUT_MS });
    checked.tscExit = result.code;
    checked.tscOutput = result.stdout + result.stderr;
    checked.diagnostics = diagnosticsByBlock(checked.tscOutput, blocks);
    progress(`tsc --noEmit over ${blocks.length} README blocks took ${((Date.now() - started) / 1000).toFixed(1)} s (exit ${result.code})`);
    // the JavaScript to run, from the same files: checking is the step above
    await runOk(process.execPath, [tsc, "-p", ".", "--noCheck"], { cwd: checked.dir, what: "tsc --noCheck (emit) over the README blocks", timeoutMs: TSC_TIMEOUT_MS });
  }, 2 * TSC_TIMEOUT_MS);

  afterAll(async () => {
    await redis?.stop();
  });

  it("finds the blocks, and each exception is marked in its README and listed with its reason", () => {
    expect(blocks.length).toBeGreaterThan(20);
    expect(exceptionProblems(blocks)).toEqual([]);
  });

  it("tsc reports nothing outside the blocks either", () => {
    const elsewhere = checked.tscOutput.split("\n").filter((line) => /error TS\d+/.test(line) && !blocks.some((block) => line.startsWith(`${block.file}(`)));
    expect(elsewhere).toEqual([]);
    if (checked.diagnostics.size === 0) expect(checked.tscExit, checked.tscOutput).toBe(0);
  });

  for (const block of blocks) {
    const where = `${block.readme}:${block.line}`;
    it(`${where} type-checks under strict, exactOptionalPropertyTypes, noUncheckedIndexedAccess`, () => {
      expect(checked.diagnostics.get(block) ?? [], `${where}: ${block.file}`).toEqual([]);
    });
    if (block.kind !== "run") continue;
    it(
      `${where} runs by itself`,
      async () => {
        const port = await freePort();
        if (block.code.includes("REDIS_URL")) redis ??= await startRedis();
        const started = Date.now();
        const outcome = await runBlock(block, {
          dir: checked.dir,
          env: cleanEnv({ PORT: String(port), ...(redis ? { REDIS_URL: redis.url } : {}) }),
          deadlineMs: BLOCK_DEADLINE_MS,
          graceMs: BLOCK_GRACE_MS,
          expectation: RUN_EXPECTATIONS[block.key] ?? {},
          url: `http://127.0.0.1:${port}`,
        });
        expect(outcome.stderr, `${where} wrote to stderr:\n${outcome.stderr}\n--- stdout\n${outcome.stdout}`).toBe("");
        progress(`${where} ${outcome.exited ? "ran to its end and exited" : "reached its end and kept serving"} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
      },
      BLOCK_DEADLINE_MS + 10_000,
    );
  }
});
