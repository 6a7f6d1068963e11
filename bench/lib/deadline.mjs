// Every wait of the benchmarks has a deadline and says what it waited for: a
// stalled connection fails the run with a message instead of hanging it.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { io as connect } from "socket.io-client";

/** Thrown when a wait passes its deadline; the message names what was awaited. */
export class DeadlineError extends Error {
  constructor(what, ms) {
    super(`${what}: not done within ${ms.toLocaleString("en")} ms`);
    this.name = "DeadlineError";
  }
}

/** Resolves as `promise` does, or rejects with a DeadlineError after `ms`; `onTimeout` cleans up. */
export function withDeadline(promise, ms, what, onTimeout) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      onTimeout?.();
      reject(new DeadlineError(what, ms));
    }, ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Polls `check` until it returns a value other than `undefined`/`false`; rejects after `ms`. */
export async function pollUntil(check, { ms, intervalMs = 10, what }) {
  const until = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined && value !== false) return value;
      last = undefined;
    } catch (error) {
      last = error;
    }
    if (Date.now() >= until) throw new DeadlineError(`${what}${last ? ` (last error: ${last.message})` : ""}`, ms);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/** fetch() that gives up after `ms`, naming the request. */
export async function fetchWithin(url, init = {}, ms = 10_000) {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(ms) });
  } catch (error) {
    if (error.name === "TimeoutError") throw new DeadlineError(`${init.method ?? "GET"} ${url}`, ms);
    throw error;
  }
}

/** One socket.io-client connection, connected within `ms`, or closed and rejected with where it stopped. */
export function connectWithin(url, options, ms = 10_000, what = `connect to ${url}`) {
  const socket = connect(url, { reconnection: false, forceNew: true, ...options });
  let engineOpen = false;
  socket.io.on("open", () => (engineOpen = true));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.close();
      reject(new DeadlineError(`${what} (${engineOpen ? "engine open, no Socket.IO connect" : "engine not open"})`, ms));
    }, ms);
    socket.once("connect", () => {
      clearTimeout(timer);
      resolve(socket);
    });
    socket.once("connect_error", (error) => {
      clearTimeout(timer);
      socket.close();
      reject(new Error(`${what}: ${error.message}`));
    });
  });
}

/**
 * Starts a child process and waits (at most `ms`) for a stdout line matching
 * `ready`; resolves with the child and the match. The child's stderr is kept
 * for the error message.
 */
export async function startProcess(command, args, { ready, ms = 30_000, name = command, ...options }) {
  const child = spawn(command, args, { ...options, stdio: ["ignore", "pipe", "pipe"] });
  const output = [];
  createInterface({ input: child.stderr }).on("line", (line) => {
    output.push(line);
    if (process.env.BENCH_DEBUG) console.error(`[${name}] ${line}`);
  });
  const lines = createInterface({ input: child.stdout });
  const match = await withDeadline(
    new Promise((resolve, reject) => {
      lines.on("line", (line) => {
        const found = ready.exec(line);
        if (found) resolve(found);
        else output.push(line);
      });
      child.once("exit", (code, signal) => reject(new Error(`${name} exited with ${signal ?? code} before it was ready:\n${output.join("\n")}`)));
      child.once("error", reject);
    }),
    ms,
    `${name} to start`,
    () => child.kill("SIGKILL"),
  ).catch((error) => {
    if (error instanceof DeadlineError && output.length) error.message += `\n${output.join("\n")}`;
    throw error;
  });
  return { child, match, output };
}

/** Waits (at most `ms`) for a child to exit; resolves with its exit code. */
export async function exitWithin(child, ms, what) {
  if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
  const [code] = await withDeadline(once(child, "exit"), ms, what);
  return code;
}

/** SIGTERM, then SIGKILL if the child has not exited within `ms`. */
export async function stopProcess(child, ms = 10_000, name = "child process") {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill("SIGTERM");
  try {
    await exitWithin(child, ms, `${name} to exit after SIGTERM`);
  } catch {
    console.error(`${name} did not exit within ${ms} ms of SIGTERM: killed`);
    child.kill("SIGKILL");
    await exitWithin(child, 5_000, `${name} to exit after SIGKILL`);
  }
}

/** Progress of a long loop on stderr, at most every `everyMs`: "label: 1,200 of 2,000 (12.3 s)". */
export function progress(label, total, everyMs = 5_000) {
  const started = Date.now();
  let last = started;
  return (done) => {
    const now = Date.now();
    if (now - last < everyMs && done < total) return;
    last = now;
    console.error(`   ${label}: ${done.toLocaleString("en")} of ${total.toLocaleString("en")} (${((now - started) / 1000).toFixed(1)} s)`);
  };
}
