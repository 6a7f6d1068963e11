import { defineConfig } from "tsup";

export default defineConfig({
  entry: ["src/main.ts"],
  format: ["esm"],
  clean: true,
  sourcemap: true,
  target: "node20",
  // the Lua scripts are files beside the code that runs them, bundled as text
  loader: { ".lua": "text" },
});
