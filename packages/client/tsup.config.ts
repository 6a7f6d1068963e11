import { defineConfig } from "tsup";
import { packageBuild } from "../../tsup.base";

// The protocol is defined once, in @presence/core, and bundled here, code and types: the client loads
// nothing at run time, and its types name no package it does not depend on. (The types bundler does not
// read package.json exports: it is shown where the subpath's types are.)
export default defineConfig(
  packageBuild(["src/index.ts"], {
    noExternal: ["@presence/core"],
    dts: {
      resolve: [/^@presence\/core/],
      compilerOptions: { paths: { "@presence/core/protocol": ["../core/dist/protocol.d.ts"], "@presence/core": ["../core/dist/index.d.ts"] } },
    },
  }),
);
