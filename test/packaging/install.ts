import { existsSync, lstatSync, mkdirSync, readFileSync, readdirSync, realpathSync, writeFileSync } from "node:fs";
import { dirname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { PACKAGES, cleanEnv, inPool, progress, runOk } from "./harness";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** A slow registry or a loaded machine gets this long per npm/pnpm call before the test says which one hung. */
const PACK_TIMEOUT_MS = 90_000;
/** pnpm mostly waits on its own startup: a few side by side save time without crowding 2 cores. */
const PACK_CONCURRENCY = 3;
const INSTALL_TIMEOUT_MS = 180_000;
const NPM_FLAGS = ["--no-audit", "--no-fund", "--prefer-offline", "--loglevel=error"];

export interface Tarball {
  dir: string;
  name: string;
  version: string;
  file: string;
  /** The other @presence packages it depends on at run time (from the registry, once published). */
  presenceDependencies: string[];
}

/**
 * `pnpm pack` in each package folder, as a release would: pnpm rewrites
 * `workspace:^` into real version ranges. The packages must be built
 * (`turbo run build`, which the root test command runs first).
 */
export async function packAll(destination: string): Promise<Tarball[]> {
  const results = await inPool(PACKAGES, PACK_CONCURRENCY, (dir) => pack(dir, destination));
  const failures = results.flatMap((result) => (result.status === "rejected" ? [String(result.reason)] : []));
  if (failures.length > 0) throw new Error(failures.join("\n\n"));
  return results.map((result) => (result as PromiseFulfilledResult<Tarball>).value);
}

async function pack(dir: string, destination: string): Promise<Tarball> {
  const cwd = join(REPO_ROOT, "packages", dir);
  const manifest = JSON.parse(readFileSync(join(cwd, "package.json"), "utf8")) as {
    name: string;
    version: string;
    dependencies?: Record<string, string>;
  };
  if (!existsSync(join(cwd, "dist"))) {
    throw new Error(`${manifest.name} has no dist/: build first (npx --yes pnpm@10 turbo run build --filter ${manifest.name}...)`);
  }
  const started = Date.now();
  const { stdout } = await runOk("npx", ["--yes", "pnpm@10", "pack", "--pack-destination", destination], {
    cwd,
    what: `pnpm pack of ${manifest.name}`,
    timeoutMs: PACK_TIMEOUT_MS,
  });
  // pnpm prints the tarball's path last; packs run side by side, so the folder's listing cannot tell which is whose
  const file = stdout
    .trim()
    .split("\n")
    .map((line) => line.trim())
    .reverse()
    .find((line) => line.endsWith(".tgz"));
  if (file === undefined || !existsSync(file)) throw new Error(`pnpm pack of ${manifest.name} printed no tarball path:\n${stdout}`);
  progress(`packed ${manifest.name} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return {
    dir,
    name: manifest.name,
    version: manifest.version,
    file,
    presenceDependencies: Object.keys(manifest.dependencies ?? {}).filter((name) => name.startsWith("@presence/")),
  };
}

/** A new npm project (`npm init -y`) in `dir`, with `specs` installed in one `npm install`. */
export async function npmProject(dir: string, specs: string[], what: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await runOk("npm", ["init", "-y"], { cwd: dir, what: `npm init in ${dir}`, timeoutMs: 60_000 });
  const started = Date.now();
  await runOk("npm", ["install", ...NPM_FLAGS, ...specs], { cwd: dir, what: `npm install (${what})`, timeoutMs: INSTALL_TIMEOUT_MS });
  progress(`npm install (${what}) took ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Where Node could find modules that are not the project's own: a
 * `node_modules` in any folder above it, or a project inside the workspace.
 */
export function outsideWorkspaceProblems(projectDir: string): string[] {
  const problems: string[] = [];
  const fromRepo = relative(REPO_ROOT, projectDir);
  if (!fromRepo.startsWith("..")) problems.push(`${projectDir} is inside the workspace ${REPO_ROOT}`);
  for (let dir = dirname(projectDir); ; dir = dirname(dir)) {
    if (existsSync(join(dir, "node_modules"))) problems.push(`${join(dir, "node_modules")} exists above the project: Node would search it`);
    if (dirname(dir) === dir) break;
  }
  return problems;
}

/** Problems with how the packages landed in `projectDir/node_modules`: each a real folder from its tarball, no workspace ranges left. */
export function installedPackageProblems(projectDir: string, tarballs: Tarball[]): string[] {
  const problems: string[] = [];
  const root = realpathSync(projectDir);
  for (const tarball of tarballs) {
    const installed = join(projectDir, "node_modules", ...tarball.name.split("/"));
    if (!existsSync(installed)) {
      problems.push(`${tarball.name} is not in node_modules`);
      continue;
    }
    if (lstatSync(installed).isSymbolicLink()) problems.push(`${tarball.name} is a symlink (to ${realpathSync(installed)}), not a folder from its tarball`);
    if (!realpathSync(installed).startsWith(root + sep)) problems.push(`${tarball.name} resolves outside the project: ${realpathSync(installed)}`);
    const manifest = readFileSync(join(installed, "package.json"), "utf8");
    if (manifest.includes("workspace:")) problems.push(`${tarball.name}'s installed package.json still has a workspace: range`);
    const { version } = JSON.parse(manifest) as { version: string };
    if (version !== tarball.version) problems.push(`${tarball.name} installed at ${version}, packed at ${tarball.version}`);
    for (const entry of ["dist/index.js", "dist/index.cjs", "dist/index.d.ts", "dist/index.d.cts"]) {
      if (!existsSync(join(installed, entry))) problems.push(`${tarball.name} has no ${entry} in its tarball`);
    }
  }
  // one copy of each: a dependent's "@presence/core": "^x.y.z" must land on the packed core, not a second copy
  const nested = readdirSync(join(projectDir, "node_modules", "@presence")).filter((name) =>
    existsSync(join(projectDir, "node_modules", "@presence", name, "node_modules", "@presence")),
  );
  for (const name of nested) problems.push(`@presence/${name} has a nested node_modules/@presence (a second copy)`);
  return problems;
}

/** Writes a file into the project and returns its path. */
export function writeExample(dir: string, file: string, source: string): string {
  const path = join(dir, file);
  writeFileSync(path, source);
  return path;
}

/** `npm ls` exits non-zero on a missing or invalid dependency or peer. */
export async function npmLs(dir: string): Promise<void> {
  await runOk("npm", ["ls", "--all"], { cwd: dir, what: `npm ls in ${dir}`, timeoutMs: 60_000, env: cleanEnv() });
}

/**
 * The README's `npm install ...` line, as npm would run it once the packages
 * are published: each `@presence/*` name becomes its tarball, plus the
 * tarballs of the `@presence/*` packages it depends on (which the registry
 * would serve); every other name is fetched from the registry as written.
 */
export function readmeInstallSpecs(readme: string, tarballs: Tarball[]): string[] | undefined {
  const line = readme.split("\n").find((text) => /^npm (install|i) /.test(text.trim()));
  if (line === undefined) return undefined;
  const names = line.trim().split(/\s+/).slice(2).filter((token) => !token.startsWith("-"));
  const byName = new Map(tarballs.map((t) => [t.name, t]));
  const specs = new Set<string>();
  const addPresence = (name: string) => {
    const found = byName.get(name);
    if (!found) throw new Error(`the README installs ${name}, which no package of the workspace is`);
    if (specs.has(found.file)) return;
    specs.add(found.file);
    found.presenceDependencies.forEach(addPresence);
  };
  for (const name of names) {
    if (name.startsWith("@presence/")) addPresence(name);
    else specs.add(name);
  }
  return [...specs];
}
