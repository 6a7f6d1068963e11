/**
 * How a README example becomes a runnable file, as ESM (`.mjs`) and as
 * CommonJS (`.cjs`): the same imports (as `import` or `require`), the same
 * body (top-level await in ESM, an async IIFE in CommonJS), and a prelude of
 * deadline helpers so that every wait says what it waited for.
 */

export type ModuleFormat = "esm" | "cjs";

/** `{ from: "socket.io", named: ["Server"] }`, `{ from: "node:cluster", default: "cluster" }`; `"io as ioClient"` renames. */
export interface ImportSpec {
  from: string;
  named?: string[];
  default?: string;
}

export interface ExampleSource {
  imports: ImportSpec[];
  /** Plain JavaScript, valid in both formats once wrapped; ends by printing `EXAMPLE OK`. */
  body: string;
}

/** Printed by an example that reached its end: exit code 0 alone could be an early exit. */
export const OK_MARKER = "EXAMPLE OK";

const PRELUDE_IMPORTS: ImportSpec[] = [
  { from: "node:assert/strict", default: "assert" },
  { from: "node:events", named: ["once"] },
];

/** Deadline helpers shared by every example (plain JS, both formats). */
const PRELUDE = `
const EXAMPLE_DEADLINE_MS = Number(process.env.EXAMPLE_DEADLINE_MS ?? 90000);
setTimeout(() => {
  console.error(\`\${process.argv[1]} (pid \${process.pid}) did not finish within \${EXAMPLE_DEADLINE_MS} ms\`);
  process.exit(1);
}, EXAMPLE_DEADLINE_MS).unref();

function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(\`timed out after \${ms} ms waiting for \${what}\`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function until(what, check, ms = 30000) {
  const deadline = Date.now() + ms;
  for (;;) {
    let last;
    try {
      if (await check()) return;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(\`timed out after \${ms} ms waiting for \${what}\${last ? ": " + last.message : ""}\`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function listening(server) {
  if (!server.listening) await within(30000, "the HTTP server to listen", once(server, "listening"));
  return \`http://127.0.0.1:\${server.address().port}\`;
}

function connected(socket) {
  return within(30000, "the Socket.IO client to connect", new Promise((resolve, reject) => {
    if (socket.connected) return resolve(socket);
    socket.once("connect", () => resolve(socket));
    socket.once("connect_error", (error) => reject(new Error(\`connect_error: \${error.message}\`)));
  }));
}
`;

/** Helpers for a cluster primary that asks its workers questions over IPC (messages tagged `example`). */
export const PRIMARY_ASKS = `
let asked = 0;
function ask(worker, what) {
  const id = ++asked;
  return within(30000, \`worker \${worker.id} to answer \${what}\`, new Promise((resolve, reject) => {
    const onMessage = (message) => {
      if (message?.example !== "answer" || message.id !== id) return;
      worker.off("message", onMessage);
      if (message.error) reject(new Error(\`worker \${worker.id}: \${message.error}\`));
      else resolve(message.value);
    };
    worker.on("message", onMessage);
    worker.send({ example: "ask", id, what });
  }));
}
function ready(worker) {
  return within(60000, \`worker \${worker.id} to be ready\`, new Promise((resolve) => {
    const onMessage = (message) => {
      if (message?.example !== "ready") return;
      worker.off("message", onMessage);
      resolve(message);
    };
    worker.on("message", onMessage);
  }));
}
`;

/** The worker's side: answers the primary from \`answers\` (an object of async functions), then says it is ready. */
export const WORKER_ANSWERS = `
  process.on("message", async (message) => {
    if (message?.example !== "ask") return;
    try {
      process.send({ example: "answer", id: message.id, value: await answers[message.what]() });
    } catch (error) {
      process.send({ example: "answer", id: message.id, error: String(error?.stack ?? error) });
    }
  });
`;

function renderImport(spec: ImportSpec, format: ModuleFormat): string {
  const named = spec.named ?? [];
  if (format === "esm") {
    const parts = [spec.default, named.length > 0 ? `{ ${named.join(", ")} }` : undefined].filter(Boolean);
    return `import ${parts.join(", ")} from "${spec.from}";`;
  }
  const lines: string[] = [];
  if (spec.default) lines.push(`const ${spec.default} = require("${spec.from}");`);
  if (named.length > 0) {
    const bindings = named.map((name) => name.replace(/^(\w+) as (\w+)$/, "$1: $2"));
    lines.push(`const { ${bindings.join(", ")} } = require("${spec.from}");`);
  }
  return lines.join("\n");
}

/** The file's text for one format. */
export function render(example: ExampleSource, format: ModuleFormat): string {
  const imports = [...PRELUDE_IMPORTS, ...example.imports].map((spec) => renderImport(spec, format)).join("\n");
  const body =
    format === "esm"
      ? example.body
      : `(async () => {\n${example.body}\n})().catch((error) => {\n  console.error(error);\n  process.exit(1);\n});`;
  return `// written by test/packaging: a README example, adapted only to run and exit\n${imports}\n${PRELUDE}\n${body}\n`;
}

/** Whitespace-insensitive, comment-free form of a line, for comparing README lines. */
export function normalizeLine(line: string): string {
  return line
    .replace(/\s+\/\/.*$/, "")
    .replace(/\s+/g, " ")
    .trim();
}

/** The README lines in `expected` that `readme` does not contain (compared line by line, normalized). */
export function missingReadmeLines(readme: string, expected: string[]): string[] {
  const lines = new Set(readme.split("\n").map(normalizeLine));
  return expected.filter((line) => !lines.has(normalizeLine(line)));
}
