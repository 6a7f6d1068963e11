import { fileURLToPath } from "node:url";
import { defineConfig } from "vitest/config";

/** Loads `.lua` files as text, as tsup's `loader: { ".lua": "text" }` does for the build. */
const luaAsText = {
  name: "lua-as-text",
  transform(code: string, id: string) {
    if (!id.endsWith(".lua")) return null;
    return { code: `export default ${JSON.stringify(code)};`, map: null };
  },
};

const project = (name: string, root: string, include: string[], extra: Record<string, unknown> = {}) => ({
  extends: true as const,
  // absolute, so a package's own `vitest run --root ../..` finds its files
  test: { name, root: fileURLToPath(new URL(root, import.meta.url)), include, ...extra },
});

export default defineConfig({
  plugins: [luaAsText],
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // the fault tests measure leases and timeouts on a 2-core machine: one file at a time
    fileParallelism: false,
    projects: [
      project("core", "packages/core", ["src/**/*.test.ts"]),
      project("memory", "packages/memory", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("socketio", "packages/socketio", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("cluster", "packages/cluster", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("sticky", "packages/sticky", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("client", "packages/client", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("react", "packages/react", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("cluster-query", "packages/cluster-query", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("redis", "packages/redis", ["src/**/*.test.ts", "test/**/*.test.ts"]),
      project("demo", "apps/demo", ["test/**/*.test.ts"], { exclude: ["test/faults/**"] }),
      project("faults", "apps/demo", ["test/faults/**/*.test.ts"]),
      project("bench", "bench", ["test/**/*.test.ts"]),
      project("packaging", "test/packaging", ["**/*.test.ts"]),
    ],
  },
});
