import { existsSync, readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { build } from "esbuild";
import { describe, expect, it } from "vitest";

const here = (path: string) => new URL(path, import.meta.url);

describe("@presence/client as shipped", () => {
  it("is at most 3.5 KB minified and gzipped, and loads nothing at run time", async () => {
    const entry = here("../dist/index.js");
    expect(existsSync(entry), "build @presence/client first (turbo run build)").toBe(true);
    // bundled as a browser app would: socket.io-client stays out, it is only a type import
    const result = await build({
      entryPoints: [entry.pathname],
      bundle: true,
      minify: true,
      format: "esm",
      platform: "browser",
      write: false,
      metafile: true,
    });
    const code = result.outputFiles[0]!.contents;
    const gzipped = gzipSync(code, { level: 9 }).length;
    console.log(`@presence/client: ${code.length} bytes minified, ${gzipped} bytes min+gzip`);
    expect(gzipped).toBeLessThanOrEqual(3584);
    expect(Object.keys(result.metafile.inputs)).toEqual([expect.stringMatching(/dist\/index\.js$/)]);
    expect(readFileSync(entry, "utf8")).not.toMatch(/from\s+["']|require\(/);
  });

  it("bundles the protocol from @presence/core, its types included: the types name socket.io-client alone", () => {
    for (const types of ["../dist/index.d.ts", "../dist/index.d.cts"]) {
      const text = readFileSync(here(types), "utf8");
      const imports = [...text.matchAll(/from\s+["']([^"']+)["']/g)].map((match) => match[1]);
      expect(imports, types).toEqual(["socket.io-client"]);
      expect(text, types).toMatch(/declare const PROTOCOL_VERSION = 6/);
    }
    const manifest = JSON.parse(readFileSync(here("../package.json"), "utf8")) as { dependencies?: object; devDependencies?: object };
    expect(manifest.dependencies).toBeUndefined();
    expect(manifest.devDependencies).toHaveProperty("@presence/core");
  });
});
