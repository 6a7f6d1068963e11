import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { TEST_SECRET, connectClient, eventually, getJson, login, sleep, startDemo, type DemoProcess } from "./demo-process";

describe("the demo in cluster mode (2 workers, sticky sessions, cluster adapter)", () => {
  let demo: DemoProcess;
  const clients: ClientSocket[] = [];
  const open = async (...args: Parameters<typeof connectClient>) => {
    const socket = await connectClient(...args);
    clients.push(socket);
    return socket;
  };

  beforeAll(async () => {
    // every client of these tests comes from 127.0.0.1: no per-IP rate limit
    demo = await startDemo(["--mode", "cluster", "--workers", "2", "--rate-limit", "0"]);
  });
  afterEach(async () => {
    for (const socket of clients.splice(0)) socket.close();
    await eventually(async () => expect((await getJson(`${demo.url}/api/presence`)).body.count).toBe(0));
  });
  afterAll(async () => {
    expect(await demo.stop()).toBe(0);
  });

  it("answers health from a worker, not the primary", async () => {
    const { status, body } = await getJson<{ ok: boolean; mode: string; pid: number }>(`${demo.url}/api/health`);
    expect(status).toBe(200);
    expect(body).toMatchObject({ ok: true, mode: "cluster" });
    expect(body.pid).not.toBe(demo.child.pid);
  });

  it("tracks users with several tabs across workers and both transports", async () => {
    const observer = await open(demo.url, await login(demo.url, "observer"));
    const seen: string[] = [];
    observer.on("user has connected", (u: string) => u !== "observer" && seen.push(`+${u}`));
    observer.on("user has disconnected", (u: string) => seen.push(`-${u}`));

    const tabs: Record<string, ClientSocket[]> = { alice: [], bob: [] };
    for (const userId of ["alice", "bob"]) {
      const token = await login(demo.url, userId);
      for (const transports of [["websocket"], ["polling"], ["polling", "websocket"]]) {
        tabs[userId]!.push(await open(demo.url, token, { transports }));
      }
    }
    await eventually(async () => {
      const { body } = await getJson<{ count: number; users: string[]; connections: Record<string, number> }>(
        `${demo.url}/api/presence`,
      );
      expect(body.count).toBe(3);
      expect(body.users.sort()).toEqual(["alice", "bob", "observer"]);
      expect(body.connections).toEqual({ alice: 3, bob: 3, observer: 1 });
    });
    expect((await getJson(`${demo.url}/api/presence/alice`)).body).toEqual({ userId: "alice", online: true });
    await eventually(() => expect(seen.sort()).toEqual(["+alice", "+bob"]));

    for (const tab of tabs.alice!) tab.close();
    await eventually(async () => expect((await getJson(`${demo.url}/api/presence/alice`)).body.online).toBe(false));
    await eventually(() => expect(seen).toContain("-alice"));
    for (const tab of tabs.bob!) tab.close();
    await eventually(async () => expect((await getJson(`${demo.url}/api/presence`)).body.users).toEqual(["observer"]));
    await eventually(() => expect(seen.filter((e) => e.startsWith("-")).sort()).toEqual(["-alice", "-bob"]));
    await sleep(200);
    expect(seen.sort()).toEqual(["+alice", "+bob", "-alice", "-bob"]);
  });

  it("refuses missing, forged and malformed tokens, counting nothing", async () => {
    const token = await login(demo.url, "mallory");
    const [payload] = token.split(".");
    const forged = `${Buffer.from(JSON.stringify({ sub: "admin", exp: Date.now() + 1e6 })).toString("base64url")}.${token.split(".")[1]}`;
    for (const bad of [undefined, "", "garbage", `${payload}.AAAA`, forged, `${token}.extra`]) {
      await expect(open(demo.url, bad, { transports: ["websocket"] })).rejects.toThrow("unauthorized");
    }
    expect((await getJson(`${demo.url}/api/presence`)).body.count).toBe(0);
  });

  it("answers 400 to invalid user ids and malformed bodies", async () => {
    for (const body of ['{"userId": ""}', '{"userId": 42}', "{}", "not json", "null", JSON.stringify({ userId: "x".repeat(300) })]) {
      const res = await fetch(`${demo.url}/api/login`, { method: "POST", body });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: string }).error).toEqual(expect.any(String));
    }
    expect((await getJson(`${demo.url}/api/presence/%E0%A4%A`)).status).toBe(400);
    expect((await getJson(`${demo.url}/api/nope`)).status).toBe(404);
    expect((await getJson(`${demo.url}/api/health`)).status).toBe(200);
  });

  it("connects every one of hundreds of WebSocket clients through the cluster", { timeout: 60_000 }, async () => {
    const count = 300;
    const tokens = await Promise.all(Array.from({ length: count }, (_, i) => login(demo.url, `ws-user-${i}`)));
    // in waves, so that broadcasts of the earlier joins run while later ones connect
    for (let i = 0; i < count; i += 50) {
      await Promise.all(tokens.slice(i, i + 50).map((token) => open(demo.url, token, { transports: ["websocket"] })));
    }
    expect(clients.filter((c) => c.connected)).toHaveLength(count);
    await eventually(async () => expect((await getJson(`${demo.url}/api/presence`)).body.count).toBe(count));
  });
});

describe("the demo in standalone mode", () => {
  it("runs one process with the memory store, configured by env alone", async () => {
    const demo = await startDemo([], { PRESENCE_MODE: "standalone", PRESENCE_SECRET: TEST_SECRET });
    try {
      const { body } = await getJson<{ mode: string; pid: number }>(`${demo.url}/api/health`);
      expect(body.mode).toBe("standalone");
      expect(body.pid).toBe(demo.child.pid);
      const socket = await connectClient(demo.url, await login(demo.url, "alice"));
      await eventually(async () => expect((await getJson(`${demo.url}/api/presence`)).body.users).toEqual(["alice"]));
      socket.close();
      await eventually(async () => expect((await getJson(`${demo.url}/api/presence`)).body.count).toBe(0));
      const page = await fetch(demo.url);
      expect(page.headers.get("content-type")).toContain("text/html");
      expect(await page.text()).toContain("Who is online");
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });

  it("rejects an unknown mode with a clear message", async () => {
    await expect(startDemo(["--mode", "nope"])).rejects.toThrow(/--mode must be one of/);
  });
});
