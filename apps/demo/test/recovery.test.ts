import { startRedisServer, type RedisServer } from "@presence/redis/testing";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { TEST_SECRET, connectClient, eventually, getJson, login, sleep, startDemo, type DemoProcess } from "./demo-process";
import { preload, workerPid } from "./faults/truth";

/**
 * Connection state recovery in every mode: a client whose transport drops
 * comes back with its socket id, its channel and the broadcasts it missed,
 * and nobody hears it leave. In the cluster modes its worker is stopped as a
 * deploy stops it (SIGTERM), so it lands on another worker (a session id
 * starts with its worker's id) and the session must cross workers: through
 * the primary (the demo's recovering cluster adapter) or through Redis (the
 * Redis Streams adapter).
 */

const LEAVE_DELAY_MS = 3000;
/** The client waits this long before reconnecting, inside the grace: the test connects bob meanwhile. */
const RECONNECT_DELAY_MS = 1000;

const workerOf = (socket: ClientSocket) => socket.io.engine.id.slice(0, 4);

interface Case {
  mode: string;
  multiWorker: boolean;
  /**
   * cluster-query has no shared record to hold a stopped node's users through
   * the grace: its close announces them leaving at once (its README), and the
   * recovered connection joins again.
   */
  stopAnnouncesLeaves?: boolean;
  flags: (redisUrl: string) => string[];
}

const cases: Case[] = [
  { mode: "standalone", multiWorker: false, flags: () => ["--mode", "standalone"] },
  { mode: "cluster", multiWorker: true, flags: () => ["--mode", "cluster", "--workers", "2"] },
  { mode: "cluster-query", multiWorker: true, stopAnnouncesLeaves: true, flags: () => ["--mode", "cluster-query", "--workers", "2"] },
  {
    mode: "redis",
    multiWorker: true,
    flags: (url) => ["--mode", "redis", "--workers", "2", "--redis-url", url, "--secret", TEST_SECRET, "--heartbeat-ms", "250", "--lease-timeout-ms", "1000"],
  },
];

describe.each(cases)("connection state recovery in $mode mode", ({ mode, multiWorker, stopAnnouncesLeaves = false, flags }) => {
  let redis: RedisServer | undefined;
  let demo: DemoProcess;
  const clients: ClientSocket[] = [];
  /** A client of `userId`; a connect that fails is tried again, twice (not what this test is about). */
  const open = async (userId: string, options: Parameters<typeof connectClient>[2] = {}, token?: string) => {
    token ??= await login(demo.url, userId);
    for (let attempt = 1; ; attempt++) {
      try {
        const socket = await connectClient(demo.url, token, { transports: ["websocket"], ...options });
        clients.push(socket);
        return socket;
      } catch (error) {
        if (attempt === 3) throw error;
      }
    }
  };

  const roomUsers = async () => {
    const { status, body } = await getJson<{ users?: Array<{ userId: string }> }>(`${demo.url}/api/rooms/general/presence`);
    if (!body.users) throw new Error(`room presence answered ${status}: ${JSON.stringify(body)}`);
    return body.users.map((user) => user.userId);
  };

  beforeAll(async () => {
    if (mode === "redis") redis = await startRedisServer();
    demo = await startDemo([...flags(redis?.url ?? ""), "--rate-limit", "0", "--leave-delay-ms", String(LEAVE_DELAY_MS)], preload("worker-id.mjs"));
  });
  afterAll(async () => {
    for (const client of clients) client.close();
    await demo?.stop();
    await redis?.stop();
  });

  it(multiWorker ? "brings the clients of a stopped worker back on another, with their ids and channels, and nobody hears them leave" : "brings a dropped client back with its id, channel and missed events, and nobody hears it leave", async () => {
    const observer = await open("observer", { reconnection: true, reconnectionDelay: RECONNECT_DELAY_MS, randomizationFactor: 0 });
    const heard: string[] = [];
    observer.on("user has connected", (userId: string) => heard.push(`+${userId}`));
    // a client recovers only from an offset: the last broadcast it received
    await open("carol");
    await eventually(() => expect(heard).toContain("+carol"), 10_000, "the observer to hear carol");
    const joined = (await observer.timeout(5000).emitWithAck("room:join", "general")) as { ok: boolean };
    expect(joined.ok).toBe(true);
    await eventually(async () => expect(await roomUsers()).toContain("observer"));

    // whoever listens is on another worker than the observer's (the one that stops): open until one lands there
    let watcher = await open("watcher");
    for (let tries = 1; multiWorker && workerOf(watcher) === workerOf(observer); tries++) {
      if (tries === 8) throw new Error(`8 watchers all landed on the observer's worker ${workerOf(observer)}`);
      const spare = watcher;
      watcher = await open("watcher");
      spare.close();
    }
    const heardByWatcher: string[] = [];
    watcher.on("user has connected", (userId: string) => heardByWatcher.push(`+${userId}`));
    watcher.on("user has disconnected", (userId: string) => heardByWatcher.push(`-${userId}`));

    const id = observer.id;
    expect(observer.recovered).toBe(false);
    const before = multiWorker ? workerOf(observer) : undefined;
    const bobToken = await login(demo.url, "bob");
    const reconnected = new Promise<void>((resolve) => observer.once("connect", () => resolve()));
    if (multiWorker) {
      // a deploy replacing one worker: it stops gracefully, its clients come back on another one
      process.kill(workerPid(demo, parseInt(before!, 36)), "SIGTERM");
    } else {
      observer.io.engine.close(); // the transport drops
    }
    await open("bob", {}, bobToken); // broadcast while the observer is away (it comes back after RECONNECT_DELAY_MS)
    await Promise.race([reconnected, sleep(15_000).then(() => Promise.reject(new Error("the observer did not reconnect within 15 s")))]);
    expect(observer.recovered).toBe(true);
    expect(observer.id).toBe(id);
    if (multiWorker) expect(workerOf(observer)).not.toBe(before);
    if (!multiWorker) {
      // the per-user event it missed, replayed once: in one process the in-memory adapter keeps every broadcast.
      // (On several nodes each node emits the per-user events to its own sockets, and none is kept for a socket
      // that was on no node meanwhile: a recovered client's @presence/client views subscribe again.)
      await eventually(() => expect(heard.filter((event) => event === "+bob")).toEqual(["+bob"]), 10_000, "the observer to receive the missed +bob");
    }

    // still in its channel, still online, never announced leaving: past the grace of the id it left behind
    await sleep(LEAVE_DELAY_MS + 1000);
    expect(await roomUsers()).toContain("observer");
    const all = await getJson<{ users: string[]; connections: Record<string, number> }>(`${demo.url}/api/presence`);
    expect(all.body.connections.observer).toBe(1);
    expect((await getJson(`${demo.url}/api/presence/observer`)).body).toEqual({ userId: "observer", online: true });
    expect(heardByWatcher).toContain("+bob");
    expect(heardByWatcher.filter((event) => event.endsWith("observer"))).toEqual(stopAnnouncesLeaves ? ["-observer", "+observer"] : []);
  });
});

describe("connection state recovery across redis instances", () => {
  let redis: RedisServer;
  let a: DemoProcess;
  let b: DemoProcess;
  const clients: ClientSocket[] = [];
  const flags = (url: string) => [
    "--mode", "redis", "--workers", "1", "--redis-url", url, "--secret", TEST_SECRET, "--rate-limit", "0",
    "--heartbeat-ms", "250", "--lease-timeout-ms", "1000", "--leave-delay-ms", String(LEAVE_DELAY_MS),
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

  it("brings a client that dropped on one instance back on the other, and the instance it left never counts it down", async () => {
    const open = async (url: string, userId: string, options: Parameters<typeof connectClient>[2] = {}) => {
      const socket = await connectClient(url, await login(url, userId), { transports: ["websocket"], ...options });
      clients.push(socket);
      return socket;
    };
    const watcher = await open(b.url, "watcher");
    const heard: string[] = [];
    watcher.on("user has connected", (userId: string) => heard.push(`+${userId}`));
    watcher.on("user has disconnected", (userId: string) => heard.push(`-${userId}`));
    const observer = await open(a.url, "observer", { reconnection: true, reconnectionDelay: RECONNECT_DELAY_MS, randomizationFactor: 0 });
    await eventually(() => expect(heard).toContain("+observer"), 10_000, "the watcher to hear the observer");
    const id = observer.id;

    // the transport drops on a (which keeps the connection for the grace), and the client comes back on b
    const reconnected = new Promise<void>((resolve) => observer.once("connect", () => resolve()));
    Object.assign(observer.io, { uri: b.url });
    observer.io.engine.close();
    await Promise.race([reconnected, sleep(15_000).then(() => Promise.reject(new Error("the observer did not reconnect within 15 s")))]);
    expect(observer.recovered).toBe(true);
    expect(observer.id).toBe(id);

    // past a's grace: a removed what it held, b holds the recovered connection
    await sleep(LEAVE_DELAY_MS + 1500);
    for (const url of [a.url, b.url]) {
      const { body } = await getJson<{ connections: Record<string, number> }>(`${url}/api/presence`);
      expect(body.connections.observer, `observer's connections seen from ${url}`).toBe(1);
    }
    expect(heard.filter((event) => event.endsWith("observer"))).toEqual(["+observer"]);
  });
});
