import { readFileSync, readdirSync } from "node:fs";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { connectClient, eventually, getJson, login, sleep, startDemo, type DemoProcess } from "./demo-process";

type Presence = { count: number; users: string[]; connections: Record<string, number> };

/** Records every presence event one client receives, as "+user" / "-user". */
function record(socket: ClientSocket): string[] {
  const events: string[] = [];
  socket.on("user has connected", (u: string) => events.push(`+${u}`));
  socket.on("user has disconnected", (u: string) => events.push(`-${u}`));
  return events;
}

/** The demo's worker pids: the primary's children (Linux's /proc). */
function workerPids(primaryPid: number): number[] {
  const children = readdirSync("/proc").filter((entry) => /^\d+$/.test(entry)).flatMap((entry) => {
    try {
      // "pid (comm) state ppid ...": comm may hold spaces, so split after its closing parenthesis
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      return ppid === primaryPid ? [Number(entry)] : [];
    } catch {
      return []; // the process ended while we looked
    }
  });
  return children;
}

describe("the demo in cluster mode: exact transitions with @presence/cluster", () => {
  let demo: DemoProcess;
  const clients: ClientSocket[] = [];
  const open = async (...args: Parameters<typeof connectClient>) => {
    const socket = await connectClient(...args);
    clients.push(socket);
    return socket;
  };

  beforeAll(async () => {
    demo = await startDemo(["--mode", "cluster", "--workers", "2", "--rate-limit", "0", "--leave-delay-ms", "0", "--log-level", "warn"]);
  });
  afterEach(async () => {
    for (const socket of clients.splice(0)) socket.close();
    await eventually(async () => expect((await getJson<Presence>(`${demo.url}/api/presence`)).body.count).toBe(0));
  });
  afterAll(async () => {
    expect(await demo.stop()).toBe(0);
  });

  it("announces one leave when two tabs on two workers close at the same moment", async () => {
    const observers = [await open(demo.url, await login(demo.url, "observer-1")), await open(demo.url, await login(demo.url, "observer-2"))];
    const seen = observers.map(record);
    for (let round = 0; round < 5; round++) {
      const userId = `twin-${round}`;
      const token = await login(demo.url, userId);
      // one at a time, so the balancer alternates: the user's tabs sit on both workers, both transports
      const tabs: ClientSocket[] = [];
      for (let i = 0; i < 4; i++) tabs.push(await open(demo.url, token, { transports: i % 2 ? ["polling"] : ["websocket"] }));
      await eventually(async () => expect((await getJson<Presence>(`${demo.url}/api/presence`)).body.connections[userId]).toBe(4));
      for (const tab of tabs) tab.close(); // together, in one turn
      await eventually(async () => expect((await getJson(`${demo.url}/api/presence/${userId}`)).body.online).toBe(false));
    }
    await sleep(300);
    for (const events of seen) {
      for (let round = 0; round < 5; round++) {
        expect(events.filter((e) => e === `+twin-${round}`), `joins of twin-${round}`).toHaveLength(1);
        expect(events.filter((e) => e === `-twin-${round}`), `leaves of twin-${round}`).toHaveLength(1);
      }
    }
  });

  it("announces each user a killed worker held exactly once", async () => {
    const pids = workerPids(demo.child.pid!);
    expect(pids).toHaveLength(2);
    const users = Array.from({ length: 30 }, (_, i) => `held-${i}`);
    // one at a time: the balancer counts a worker's sessions once the worker reports them, so
    // sequential connections alternate between the workers
    const observers: ClientSocket[] = [];
    for (const i of [1, 2, 3, 4]) observers.push(await open(demo.url, await login(demo.url, `watcher-${i}`)));
    const tabs: Array<{ userId: string; socket: ClientSocket }> = [];
    for (const userId of users) tabs.push({ userId, socket: await open(demo.url, await login(demo.url, userId)) });
    const seen = observers.map(record);
    await eventually(async () => expect((await getJson<Presence>(`${demo.url}/api/presence`)).body.count).toBe(34));

    const victim = pids[0]!;
    const gone: string[] = [];
    for (const { userId, socket } of tabs) socket.once("disconnect", () => gone.push(userId));
    process.kill(victim, "SIGKILL");
    await eventually(() => expect(gone.length).toBeGreaterThan(0), 10_000, "a tab on the killed worker to see its disconnect");
    const dropped = new Set(gone.filter((u) => u.startsWith("held-")));
    // the users whose only tab was on the dead worker are offline for everyone (how soon is not a test's claim)
    await eventually(async () => {
      const { body } = await getJson<Presence>(`${demo.url}/api/presence`);
      for (const userId of dropped) expect(body.users).not.toContain(userId);
    }, 10_000, "the killed worker's users to leave /api/presence");
    await sleep(500);
    const survivors = observers.map((o, i) => ({ connected: o.connected, events: seen[i]! })).filter((o) => o.connected);
    expect(survivors.length).toBeGreaterThan(0);
    for (const { events } of survivors) {
      for (const userId of dropped) expect(events.filter((e) => e === `-${userId}`), `leaves of ${userId}`).toHaveLength(1);
      for (const userId of users.filter((u) => !dropped.has(u))) expect(events).not.toContain(`-${userId}`);
    }
    // a replacement worker starts clean and the cluster keeps answering
    await eventually(async () => expect((await getJson(`${demo.url}/api/health`)).body.ok).toBe(true));
  });
});

describe("the demo in cluster-query mode", () => {
  it("counts users across workers by asking every node", async () => {
    const demo = await startDemo(["--mode", "cluster-query", "--workers", "2", "--rate-limit", "0", "--log-level", "warn"]);
    const sockets: ClientSocket[] = [];
    try {
      expect((await getJson(`${demo.url}/api/health`)).body.mode).toBe("cluster-query");
      const token = await login(demo.url, "alice");
      for (const transports of [["websocket"], ["polling"]]) sockets.push(await connectClient(demo.url, token, { transports }));
      sockets.push(await connectClient(demo.url, await login(demo.url, "bob")));
      await eventually(async () => {
        const { body } = await getJson<Presence>(`${demo.url}/api/presence`);
        expect(body.users.sort()).toEqual(["alice", "bob"]);
        expect(body.connections.alice).toBe(2);
      });
    } finally {
      for (const socket of sockets) socket.close();
      expect(await demo.stop()).toBe(0);
    }
  });
});
