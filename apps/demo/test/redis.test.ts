import { execFileSync } from "node:child_process";
import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_SECRET, connectClient, eventually, getJson, login, sleep, startDemo, type DemoProcess } from "./demo-process";

/** The pids of a demo instance: its primary and its workers. */
export function instancePids(demo: DemoProcess): number[] {
  const children = execFileSync("pgrep", ["-P", String(demo.child.pid)], { encoding: "utf8" })
    .split("\n")
    .filter(Boolean)
    .map(Number);
  return [demo.child.pid!, ...children];
}

describe("the demo in redis mode: two instances, one deployment", () => {
  let redis: RedisServer;
  let a: DemoProcess;
  let b: DemoProcess;
  const clients: ClientSocket[] = [];
  const flags = (url: string) => [
    "--mode", "redis", "--workers", "2", "--redis-url", url, "--secret", TEST_SECRET,
    "--heartbeat-ms", "250", "--lease-timeout-ms", "1000",
  ];

  beforeAll(async () => {
    redis = await startRedisServer();
    [a, b] = await Promise.all([startDemo(flags(redis.url)), startDemo(flags(redis.url))]);
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await Promise.all([a?.stop(), b?.stop()]);
    await redis?.stop();
  });

  const open = async (demo: DemoProcess, userId: string, transports = ["websocket"]) => {
    const socket = await connectClient(demo.url, await login(demo.url, userId), { transports });
    clients.push(socket);
    return socket;
  };

  it("spans both instances: presence and events", async () => {
    const observer = await open(a, "observer");
    const seen: string[] = [];
    observer.on("user has connected", (u: string) => u !== "observer" && seen.push(`+${u}`));
    observer.on("user has disconnected", (u: string) => seen.push(`-${u}`));

    const bob = await open(b, "bob", ["polling"]);
    await open(a, "alice");
    await eventually(() => expect(seen.sort()).toEqual(["+alice", "+bob"]));
    for (const demo of [a, b]) {
      const { body } = await getJson<{ users: string[]; count: number }>(`${demo.url}/api/presence`);
      expect(body.users.sort()).toEqual(["alice", "bob", "observer"]);
      expect((await getJson(`${demo.url}/api/presence/bob`)).body.online).toBe(true);
    }
    bob.close();
    await eventually(() => expect(seen).toContain("-bob"));
    expect((await getJson(`${a.url}/api/presence/bob`)).body.online).toBe(false);
  });

  it("makes the users of a whole instance killed with SIGKILL leave, announced once", async () => {
    const observer = await open(a, "watcher");
    const leaves: string[] = [];
    observer.on("user has disconnected", (u: string) => leaves.push(u));
    await open(b, "carol");
    await open(b, "carol", ["polling"]);
    await open(b, "dave");
    await open(a, "dave"); // dave stays: he has a tab on the surviving instance
    await eventually(async () =>
      expect((await getJson<{ users: string[] }>(`${a.url}/api/presence`)).body.users).toEqual(
        expect.arrayContaining(["carol", "dave"]),
      ),
    );

    for (const pid of instancePids(b)) process.kill(pid, "SIGKILL");
    // how soon is the lease's bound, not timed here: the wait's deadline is a plain one
    await eventually(async () => expect((await getJson(`${a.url}/api/presence/carol`)).body.online).toBe(false), 15_000, "carol, held only by the killed instance, to be offline");
    await sleep(1000);
    expect(leaves.filter((u) => u === "carol")).toEqual(["carol"]);
    expect(leaves).not.toContain("dave");
    expect((await getJson(`${a.url}/api/presence/dave`)).body.online).toBe(true);
    expect(Number(redis.cli("HGET", "{presence}:users", "dave"))).toBe(1);
  });
});
