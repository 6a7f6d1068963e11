import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base";

export default defineConfig(packageBuild(["src/index.ts", "src/testing.ts"], { external: ["vitest", "socket.io-client", "fast-check", "@presence/core/testing"] }));
