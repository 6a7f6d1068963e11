import { spawn } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { io as connect, type Socket } from "socket.io-client";
import { afterAll, beforeAll, expect, it } from "vitest";

const example = fileURLToPath(new URL("../examples/standalone.mjs", import.meta.url));
let child: ReturnType<typeof spawn>;
let url: string;

beforeAll(async () => {
  child = spawn(process.execPath, [example], { env: { ...process.env, PORT: "0" }, stdio: ["ignore", "pipe", "inherit"] });
  const [line] = (await once(createInterface({ input: child.stdout! }), "line", { signal: AbortSignal.timeout(15_000) }).catch((error: unknown) => {
    throw new Error("timed out after 15000 ms waiting for the standalone example to print its URL", { cause: error });
  })) as [string];
  url = /(http:\/\/\S+)/.exec(line)![1]!;
});
afterAll(() => {
  child.kill();
});

const client = (userId: string) =>
  new Promise<Socket>((resolve, reject) => {
    const socket = connect(url, { auth: { userId }, forceNew: true, transports: ["websocket"] });
    const timer = setTimeout(() => reject(new Error(`timed out after 10000 ms waiting for ${userId}'s socket to connect`)), 10_000);
    socket.once("connect", () => (clearTimeout(timer), resolve(socket)));
  });

it("the README's standalone example counts users, not sockets", async () => {
  const observer = await client("observer");
  const seen: string[] = [];
  observer.on("user has connected", (u: string) => u !== "observer" && seen.push(`+${u}`));
  observer.on("user has disconnected", (u: string) => seen.push(`-${u}`));
  const tabs = [await client("alice"), await client("alice")];
  tabs[0]!.close();
  await new Promise((r) => setTimeout(r, 100));
  tabs[1]!.close();
  await expect.poll(() => seen).toEqual(["+alice", "-alice"]);
  observer.close();
});
