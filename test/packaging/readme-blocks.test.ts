import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { cleanEnv } from "./harness";
import { EXCEPTIONS, compiledFile, exceptionProblems, extractBlocks, runBlock, writeBlocks, type ReadmeBlock } from "./readme-blocks";

/** The rule of readme-blocks.ts on made-up READMEs: what is checked, how exceptions are marked, what a run must show. */

const README = [
  "# x",
  "```sh",
  "npm install x",
  "```",
  "```ts",
  'import { a } from "a";',
  "```",
  "1. A list item:",
  "",
  "   ```js no-run",
  "   const b = 1;",
  "   ```",
  "<!-- assumes: declare const io: number; -->",
  "```ts fragment",
  "io + 1;",
  "```",
  "```json",
  "{}",
  "```",
  "```ts",
  'import { a } from "a";',
  "```",
].join("\n");

describe("finding README blocks", () => {
  const blocks = extractBlocks("packages/x/README.md", README);

  it("takes ts and js blocks, each as its own file, and leaves sh and json alone", () => {
    expect(blocks.map((block) => [block.line, block.lang, block.kind, block.file])).toEqual([
      [5, "ts", "run", "packages-x-readme-L5.ts"],
      [10, "js", "no-run", "packages-x-readme-L10.js"],
      [14, "ts", "fragment", "packages-x-readme-L14.ts"],
      [20, "ts", "run", "packages-x-readme-L20.ts"],
    ]);
  });

  it("removes a list item's indentation, and puts a fragment's assumptions in front of it", () => {
    expect(blocks[1]?.code).toBe("const b = 1;\n");
    expect(blocks[2]?.assumes).toBe("declare const io: number;");
  });

  it("names two blocks that open with the same line apart", () => {
    expect(blocks[0]?.key).toBe('packages/x/README.md: import { a } from "a";');
    expect(blocks[3]?.key).toBe('packages/x/README.md: import { a } from "a"; (#2)');
  });

  it("refuses an unknown word after the language, and a fragment that says nothing of what it assumes", () => {
    expect(() => extractBlocks("R.md", "```ts norun\nx\n```\n")).toThrow(/unknown word/);
    expect(() => extractBlocks("R.md", "```ts fragment\nx\n```\n")).toThrow(/assumes/);
  });

  it("reports a block marked as an exception that EXCEPTIONS does not list", () => {
    expect(exceptionProblems(blocks).filter((problem) => problem.includes("packages/x/README.md"))).toEqual([
      expect.stringContaining("packages/x/README.md:10 is marked no-run but not listed"),
      expect.stringContaining("packages/x/README.md:14 is marked fragment but not listed"),
    ]);
    expect(Object.keys(EXCEPTIONS).length).toBeLessThan(10); // rare: a long list is a README that needs rewriting
  });
});

describe("running a block", () => {
  const dir = mkdtempSync(join(tmpdir(), "presence-readme-blocks-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A block as it would be compiled: plain JavaScript, so its source is its output. */
  function block(name: string, code: string): ReadmeBlock {
    const made: ReadmeBlock = { readme: "R.md", line: 1, lang: "js", kind: "run", code, file: `${name}.js`, key: `R.md: ${name}` };
    writeBlocks(dir, [made]);
    mkdirSync(join(dir, "out"), { recursive: true });
    copyFileSync(join(dir, made.file), join(dir, "out", compiledFile(made)));
    return made;
  }
  const options = { dir, env: cleanEnv(), deadlineMs: 20_000, graceMs: 500, expectation: {}, url: "http://127.0.0.1:1" };

  it("passes a block that ends by itself, and one that keeps serving through the grace", async () => {
    expect(await runBlock(block("ends", "console.log('done');\n"), options)).toMatchObject({ exited: true, code: 0, stderr: "" });
    const serving = await runBlock(block("serves", "setInterval(() => {}, 1000);\n"), options);
    expect(serving.exited).toBe(false);
  });

  it("fails a block that throws, and one that crashes after its end", async () => {
    await expect(runBlock(block("throws", "throw new Error('boom');\n"), options)).rejects.toThrow(/before reaching its end[\s\S]*boom/);
    await expect(runBlock(block("crashes", "setTimeout(() => { throw new Error('later'); }, 100);\nsetInterval(() => {}, 1000);\n"), options)).rejects.toThrow(/later/);
  });

  it("hands back what the block wrote to stderr, and fails one that never reaches its end in time", async () => {
    expect((await runBlock(block("warns", "console.error('careful');\n"), options)).stderr).toContain("careful");
    await expect(runBlock(block("hangs", "await new Promise(() => setInterval(() => {}, 1000));\n"), { ...options, deadlineMs: 1_000 })).rejects.toThrow(
      /timed out after 1000 ms waiting for 1 process\(es\) to reach the block's end/,
    );
  });
});
