import { describe, expect, it } from "vitest";
import { progress, run } from "./harness";
import { REPO_ROOT } from "./install";

/**
 * CONTRIBUTING.md: a package's own scripts work from the repo, e.g.
 * `pnpm --filter @presence/core test` runs that package's tests (its script
 * names a vitest project of the root config). One quick package is enough to
 * show the wiring; the others use the same script shape.
 */
describe("per-package scripts", () => {
  it("`pnpm --filter @presence/core test` runs the core tests and exits 0", async () => {
    const started = Date.now();
    const result = await run("npx", ["--yes", "pnpm@10", "--filter", "@presence/core", "test"], {
      cwd: REPO_ROOT,
      what: "npx --yes pnpm@10 --filter @presence/core test",
      timeoutMs: 150_000,
    });
    const output = `exit ${result.code ?? result.signal}\n--- stdout\n${result.stdout}\n--- stderr\n${result.stderr}`;
    expect(result.code, output).toBe(0);
    expect(result.stdout, output).toMatch(/Test Files\s.*\d+ passed/);
    expect(result.stdout, output).not.toMatch(/No test files found/i);
    progress(`pnpm --filter @presence/core test: ok in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }, 160_000);
});
