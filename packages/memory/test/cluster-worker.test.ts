import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const fixture = fileURLToPath(new URL("./fixtures/in-worker.mjs", import.meta.url));

/** Runs a script to its end, within a deadline; resolves with its exit code and stderr. */
function run(script: string, timeoutMs = 20_000): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`${script} did not exit within ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    child.on("exit", (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    });
  });
}

describe("MemoryStore in a cluster worker", () => {
  it("warns, once, that it counts that worker's connections only", async () => {
    const { code, stderr } = await run(fixture);
    expect(code).toBe(0);
    expect(stderr.match(/PRESENCE_MEMORY_IN_WORKER/g)).toHaveLength(1);
    expect(stderr).toContain("use @presence/cluster");
  });
});
