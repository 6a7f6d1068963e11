/**
 * Resolves `--- @include "includes/x.lua"` lines (BullMQ's convention) with
 * the shared helpers, so that each script is sent to Redis whole and every
 * encoding or clock conversion is written once. A helper may include
 * another; each is pulled in once per script, before its first user. The
 * helpers are imported as text like the scripts themselves (tsup's and
 * vitest's `.lua` text loader), so the build and the tests resolve them the
 * same way.
 */
export function resolveIncludes(name: string, source: string, includes: Readonly<Record<string, string>>): string {
  const seen = new Set<string>();
  const resolve = (text: string, from: string): string =>
    text.replace(/^--- @include "([^"]+)"[ \t]*$/gm, (_, path: string) => {
      const included = includes[path];
      if (included === undefined) throw new Error(`${from}: unknown include ${JSON.stringify(path)}`);
      if (seen.has(path)) return `-- (${path} included above)`;
      seen.add(path);
      return `-- from ${path}\n${resolve(included, path).trimEnd()}`;
    });
  return resolve(source, name);
}
