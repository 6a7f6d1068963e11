import type { Options } from "tsup";

/** What every package builds: ESM + CJS with a types file for each, for Node 20. */
export const packageBuild = (entry: string[], extra: Options = {}): Options => ({
  entry,
  format: ["esm", "cjs"],
  dts: true,
  clean: true,
  sourcemap: true,
  target: "node20",
  ...extra,
});
