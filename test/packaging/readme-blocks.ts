import { spawn } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join, relative } from "node:path";

/**
 * Every code block of every README, as written: found here, written into the
 * packaging test's fresh project one file per block, type-checked there under
 * strict settings against the installed tarballs, and run where it is
 * runnable (see CONTRIBUTING.md, "README code blocks").
 *
 * The rule, from a block's info string (the words after the opening fence):
 * - ts, typescript, tsx, js, javascript, jsx: checked, each block its own
 *   module; run too, unless a second word says otherwise:
 * - `no-run`: checked, not run (it needs what this machine has not: a browser,
 *   a Redis Cluster, a test runner);
 * - `fragment`: checked with the code of the HTML comment right above it
 *   (`<!-- assumes: ... -->`) in front, not run: an excerpt of the block
 *   before it that would only repeat it.
 * Both are exceptions, each listed in EXCEPTIONS with its reason; any other
 * language (sh, json, html, text) is not checked.
 */

export const CHECKED_LANGUAGES = new Set(["ts", "typescript", "tsx", "js", "javascript", "jsx"]);
export type BlockKind = "run" | "no-run" | "fragment";

export interface ReadmeBlock {
  /** The README, relative to the repo root (`packages/redis/README.md`). */
  readme: string;
  /** 1-based line of the opening fence. */
  line: number;
  lang: string;
  kind: BlockKind;
  /** The block's text, its fence's indentation removed. */
  code: string;
  /** A fragment's assumed code, from the `<!-- assumes: ... -->` comment above it. */
  assumes?: string;
  /** `packages-redis-readme-L17.ts`: the file it becomes in the fresh project. */
  file: string;
  /** How EXCEPTIONS names a block: the README and the block's first line of code. */
  key: string;
}

/**
 * The blocks that are not run, each with why; keyed by README and the block's
 * first line. The packaging test fails when a block is marked and not listed
 * here, or listed and not marked: an exception is a decision, not a default.
 */
export const EXCEPTIONS: Record<string, { kind: Exclude<BlockKind, "run">; why: string }> = {
  'packages/client/README.md: import { io } from "socket.io-client";': { kind: "no-run", why: "a browser's code: it connects to your server" },
  'packages/socketio/README.md: import { io, type Socket } from "socket.io-client";': { kind: "no-run", why: "a browser's code: it connects to your server" },
  'packages/react/README.md: import { io } from "socket.io-client";': { kind: "no-run", why: "components: they render in your React app" },
  'packages/redis/README.md: import { Cluster } from "ioredis";': { kind: "no-run", why: "it needs a Redis Cluster" },
  'packages/core/README.md: import { describePresenceStore } from "@presence/core/testing";': { kind: "no-run", why: "a test file: it runs under vitest" },
  'packages/core/README.md: import { describePresenceDeployment } from "@presence/core/testing";': { kind: "no-run", why: "a test file: it runs under vitest" },
  'packages/socketio/README.md: import { describeBindingScenarios } from "@presence/socketio/testing";': { kind: "no-run", why: "a test file: it runs under vitest" },
  'packages/core/README.md: describePresenceDeployment("cluster-query", {': {
    kind: "fragment",
    why: "one option of the block above (`unmet`), on a deployment the README does not repeat",
  },
};

/**
 * What a runnable block shows, beyond reaching its end: `markers` is how many
 * processes reach the end of the block (a cluster's primary and each worker);
 * `visit` connects a Socket.IO client with that `auth` to the block's server
 * (on PORT) and waits until the block prints `prints`.
 */
export interface RunExpectation {
  markers?: number;
  visit?: { auth: Record<string, string>; prints: string };
}

export const RUN_EXPECTATIONS: Record<string, RunExpectation> = {
  'README.md: import { Server } from "socket.io";': { visit: { auth: { token: "token-of-alice" }, prints: "alice is online" } },
  // the primary and availableParallelism() workers
  'packages/cluster/README.md: import cluster from "node:cluster";': { markers: 1 + availableParallelism() },
  // the primary and 2 workers
  'packages/cluster-query/README.md: import cluster from "node:cluster";': { markers: 3 },
  'packages/sticky/README.md: import cluster from "node:cluster";': { markers: 3 },
};

/** The READMEs whose blocks are checked: the root's, each app's and each package's, found on disk. */
export function readmeFiles(root: string): string[] {
  const files = [join(root, "README.md")];
  for (const parent of ["apps", "packages"]) {
    const dir = join(root, parent);
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      const readme = join(dir, name, "README.md");
      if (existsSync(readme)) files.push(readme);
    }
  }
  return files;
}

/** The checked blocks of one README (`readme` is its path relative to the repo root, for names and messages). */
export function extractBlocks(readme: string, text: string): ReadmeBlock[] {
  const lines = text.split("\n");
  const blocks: ReadmeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,}|~{3,})\s*([^`\s]*)\s*(.*)$/.exec(lines[i] ?? "");
    if (!open) continue;
    const [, indent = "", fence = "", lang = "", rest = ""] = open;
    let end = i + 1;
    while (end < lines.length && !new RegExp(`^\\s*${fence[0]}{${fence.length},}\\s*$`).test(lines[end] ?? "")) end++;
    if (end === lines.length) throw new Error(`${readme}:${i + 1}: a code block that is never closed`);
    const body = lines.slice(i + 1, end).map((line) => (line.startsWith(indent) ? line.slice(indent.length) : line.trimStart()));
    const opening = i + 1;
    i = end;
    if (!CHECKED_LANGUAGES.has(lang.toLowerCase())) continue;
    const flags = rest.split(/\s+/).filter(Boolean);
    const unknown = flags.filter((flag) => flag !== "no-run" && flag !== "fragment");
    if (unknown.length > 0) throw new Error(`${readme}:${opening}: unknown word(s) ${unknown.join(", ")} after \`\`\`${lang} (known: no-run, fragment)`);
    const kind: BlockKind = flags.includes("fragment") ? "fragment" : flags.includes("no-run") ? "no-run" : "run";
    const code = body.join("\n") + "\n";
    const firstLine = body.find((line) => line.trim() !== "")?.trim() ?? "";
    const baseKey = `${readme}: ${firstLine}`;
    const same = blocks.filter((earlier) => earlier.key === baseKey || earlier.key.startsWith(`${baseKey} (#`)).length;
    const block: ReadmeBlock = {
      readme,
      line: opening,
      lang: lang.toLowerCase(),
      kind,
      code,
      file: `${readme.replace(/README\.md$/, "readme").replace(/[^A-Za-z0-9]+/g, "-").replace(/^-|-$/g, "") || "readme"}-L${opening}.${extension(lang.toLowerCase())}`,
      key: same === 0 ? baseKey : `${baseKey} (#${same + 1})`, // a second block opening with the same line
    };
    if (kind === "fragment") {
      const assumes = assumedCode(lines, opening - 1);
      if (assumes === undefined) throw new Error(`${readme}:${opening}: a \`fragment\` block needs an <!-- assumes: ... --> comment right above it`);
      block.assumes = assumes;
    }
    blocks.push(block);
  }
  return blocks;
}

/** The code of an `<!-- assumes: ... -->` comment ending on the line (blank lines aside) above `fenceIndex`. */
function assumedCode(lines: string[], fenceIndex: number): string | undefined {
  let end = fenceIndex - 1;
  while (end >= 0 && (lines[end] ?? "").trim() === "") end--;
  if (end < 0 || !(lines[end] ?? "").trim().endsWith("-->")) return undefined;
  let start = end;
  while (start >= 0 && !(lines[start] ?? "").includes("<!--")) start--;
  if (start < 0) return undefined;
  const comment = lines.slice(start, end + 1).join("\n");
  const match = /<!--\s*assumes:([\s\S]*?)-->/.exec(comment);
  return match?.[1]?.trim();
}

function extension(lang: string): string {
  if (lang === "tsx" || lang === "jsx") return lang;
  if (lang === "js" || lang === "javascript") return "js";
  return "ts";
}

/** Every checked block of every README under `root`. */
export function allBlocks(root: string): ReadmeBlock[] {
  return readmeFiles(root).flatMap((path) => extractBlocks(relative(root, path), readFileSync(path, "utf8")));
}

/** Problems with the marked blocks: each one marked must be listed in EXCEPTIONS as that kind, and each listed one marked. */
export function exceptionProblems(blocks: ReadmeBlock[]): string[] {
  const problems: string[] = [];
  const seen = new Set<string>();
  for (const block of blocks) {
    const listed = EXCEPTIONS[block.key];
    if (listed) seen.add(block.key);
    if (block.kind === "run" && listed) problems.push(`${block.readme}:${block.line} is listed as ${listed.kind} but marked to run`);
    if (block.kind !== "run" && listed?.kind !== block.kind) {
      problems.push(`${block.readme}:${block.line} is marked ${block.kind} but not listed as such in EXCEPTIONS (readme-blocks.ts): "${block.key}"`);
    }
  }
  for (const key of Object.keys(EXCEPTIONS)) if (!seen.has(key)) problems.push(`EXCEPTIONS lists a block no README has: "${key}"`);
  const runnable = new Set(blocks.filter((block) => block.kind === "run").map((block) => block.key));
  for (const key of Object.keys(RUN_EXPECTATIONS)) if (!runnable.has(key)) problems.push(`RUN_EXPECTATIONS names a block no README runs: "${key}"`);
  return problems;
}

/** The compiler options every block is checked with: what a careful app would set. */
export const BLOCK_TSCONFIG = {
  compilerOptions: {
    target: "ES2022",
    lib: ["ES2023", "DOM", "DOM.Iterable"],
    module: "NodeNext",
    moduleResolution: "NodeNext",
    moduleDetection: "force",
    types: ["node"],
    jsx: "react-jsx",
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    allowJs: true,
    checkJs: true,
    skipLibCheck: true,
    outDir: "out",
  },
  include: ["*.ts", "*.tsx", "*.js", "*.jsx"],
};

/** Printed by the runner once a block's top level has finished (its top-level awaits included). */
export const BLOCK_DONE_MARKER = "README BLOCK DONE";

/**
 * Writes the blocks into `dir` (an ESM folder inside the fresh project, so
 * that its node_modules are the installed tarballs), with the tsconfig above
 * and, for each runnable block, a runner `run-<name>.mjs` that imports the
 * compiled block and then prints the marker.
 */
export function writeBlocks(dir: string, blocks: ReadmeBlock[]): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "package.json"), JSON.stringify({ name: "readme-blocks", private: true, type: "module" }, null, 2));
  writeFileSync(join(dir, "tsconfig.json"), JSON.stringify(BLOCK_TSCONFIG, null, 2));
  for (const block of blocks) {
    const source = block.assumes === undefined ? block.code : `${block.assumes}\n// ---- the README's block, as written:\n${block.code}`;
    writeFileSync(join(dir, block.file), source);
    if (block.kind === "run") {
      writeFileSync(join(dir, runnerFile(block)), `await import("./out/${compiledFile(block)}");\nconsole.log(${JSON.stringify(BLOCK_DONE_MARKER)});\n`);
    }
  }
}

export function compiledFile(block: ReadmeBlock): string {
  return block.file.replace(/\.(ts|tsx|jsx)$/, ".js");
}

export function runnerFile(block: ReadmeBlock): string {
  return `run-${block.file.replace(/\.\w+$/, "")}.mjs`;
}

/** tsc's diagnostics, grouped by the README block they fall in (`file(line,col): error ...` lines start with the file). */
export function diagnosticsByBlock(output: string, blocks: ReadmeBlock[]): Map<ReadmeBlock, string[]> {
  const found = new Map<ReadmeBlock, string[]>();
  for (const line of output.split("\n")) {
    const block = blocks.find((candidate) => line.startsWith(`${candidate.file}(`));
    if (!block) continue;
    const at = /^[^(]+\((\d+),(\d+)\)/.exec(line);
    const offset = block.assumes === undefined ? 0 : block.assumes.split("\n").length + 1;
    const inReadme = at ? `${block.readme}:${block.line + Number(at[1]) - offset}: ` : "";
    found.set(block, [...(found.get(block) ?? []), `${inReadme}${line}`]);
  }
  return found;
}

export interface BlockRun {
  /** Whether the block's processes ended by themselves (else they served until killed, having reached their end). */
  exited: boolean;
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface BlockRunOptions {
  dir: string;
  env: NodeJS.ProcessEnv;
  /** The whole run, visit included, before it is killed as hung. */
  deadlineMs: number;
  /** How long a block that serves must keep serving without a word on stderr once it reached its end. */
  graceMs: number;
  expectation: RunExpectation;
  /** For a visit: the block's server, as a client reaches it. */
  url: string;
}

/**
 * Runs a block's runner with plain `node`: it passes when every expected
 * process reached the block's end and then either exited 0 or kept running
 * through the grace (a server: killed then, with everything it forked), and,
 * with a visit, printed what it shows once a client connected. Rejects,
 * with the output, when it exits non-zero or misses the deadline.
 */
export function runBlock(block: ReadmeBlock, options: BlockRunOptions): Promise<BlockRun> {
  const markers = options.expectation.markers ?? 1;
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [runnerFile(block)], { cwd: options.dir, env: options.env, stdio: ["ignore", "pipe", "pipe"], detached: true });
    let stdout = "";
    let stderr = "";
    let settled = false;
    let visitor: ReturnType<typeof spawn> | undefined;
    const described = () => `--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    const killAll = () => {
      for (const pid of [child.pid, visitor?.pid]) {
        if (pid === undefined) continue;
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    };
    const finish = (error: Error | undefined, exited: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(deadline);
      killAll();
      if (error) reject(error);
      else resolve({ exited, code: child.exitCode, stdout, stderr });
    };
    const reached = () => stdout.split("\n").filter((line) => line === BLOCK_DONE_MARKER).length;
    const deadline = setTimeout(() => {
      const visit = options.expectation.visit;
      const what =
        reached() < markers
          ? `${markers} process(es) to reach the block's end (${reached()} did)`
          : `the block to print ${JSON.stringify(visit?.prints)} once a client connected`;
      finish(new Error(`${block.readme}:${block.line}: timed out after ${options.deadlineMs} ms waiting for ${what}\n${described()}`), false);
    }, options.deadlineMs);
    let graceStarted = false;
    const onReached = () => {
      if (graceStarted || reached() < markers) return;
      graceStarted = true;
      const visit = options.expectation.visit;
      if (visit) {
        visitor = spawn(process.execPath, ["--input-type=module", "-e", VISITOR], {
          cwd: options.dir,
          env: { ...options.env, VISIT_URL: options.url, VISIT_AUTH: JSON.stringify(visit.auth) },
          stdio: ["ignore", "pipe", "pipe"],
          detached: true,
        });
        let visitorOutput = "";
        visitor.stdout?.on("data", (chunk: Buffer) => (visitorOutput += chunk.toString()));
        visitor.stderr?.on("data", (chunk: Buffer) => (visitorOutput += chunk.toString()));
        visitor.on("exit", (code) => {
          if (code !== 0 && !settled) finish(new Error(`${block.readme}:${block.line}: the visiting client failed (exit ${code}): ${visitorOutput}\n${described()}`), false);
        });
      }
      const check = setInterval(() => {
        if (settled) return clearInterval(check);
        if (visit && !stdout.includes(visit.prints)) return;
        clearInterval(check);
        setTimeout(() => finish(undefined, false), options.graceMs);
      }, 50);
    };
    child.stdout.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      onReached();
    });
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    child.on("error", (error) => finish(new Error(`${block.readme}:${block.line}: node could not start: ${error.message}`), false));
    child.on("close", (code, signal) => {
      if (settled) return;
      if (code === 0 && reached() >= markers && !options.expectation.visit) return finish(undefined, true);
      finish(new Error(`${block.readme}:${block.line}: exited (${code ?? signal}) ${reached() < markers ? "before reaching its end" : "before showing what it shows"}\n${described()}`), true);
    });
  });
}

/** A socket.io-client from the fresh project that connects with VISIT_AUTH to VISIT_URL and stays. */
const VISITOR = `
import { io } from "socket.io-client";
const socket = io(process.env.VISIT_URL, { auth: JSON.parse(process.env.VISIT_AUTH), reconnection: false });
socket.on("connect_error", (error) => { console.error("connect_error: " + error.message); process.exit(1); });
`;
