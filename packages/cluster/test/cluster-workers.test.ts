import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { ClusterFixture, connectClient, getJson, increasing, recordTransitions, settle, until } from "./cluster-fixture";

describe("@presence/cluster across real Node cluster workers (advanced serialization)", () => {
  let cluster: ClusterFixture;
  let workers: Array<{ id: number; pid: number; port: number }>;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    cluster = ClusterFixture.start({ WORKERS: "3", SERIALIZATION: "advanced", LEAVE_GRACE_MS: "500" });
    workers = await cluster.workers(3);
  });
  afterEach(() => {
    for (const client of clients.splice(0)) client.close();
  });
  afterAll(() => cluster?.stop());

  it("checks, in each worker, the limits the primary was set up with", async () => {
    for (const { port } of workers) {
      expect((await getJson(port, "/limits")).body).toEqual({ maxUserIdBytes: 64, maxRoomBytes: 256, maxUserInfoBytes: 1024 });
    }
  });

  it("announces one leave when two tabs of a user on two workers close together", async () => {
    const [w0, w1, w2] = workers as [(typeof workers)[0], (typeof workers)[0], (typeof workers)[0]];
    const observers = [await connectClient(w2.port, "observer-2", clients), await connectClient(w0.port, "observer-0", clients)];
    const seen = observers.map(recordTransitions);
    for (let round = 0; round < 5; round++) {
      const user = `twin-${round}`;
      const tabs = [await connectClient(w0.port, user, clients), await connectClient(w1.port, user, clients)];
      await until(`${user} online`, async () => expect((await getJson(w2.port, `/online?userId=${user}`)).body.online).toBe(true));
      for (const tab of tabs) tab.close(); // the same instant, on two workers
    }
    await until("the twins offline", async () => expect((await getJson(w2.port, "/users")).body.users).toEqual(expect.not.arrayContaining(["twin-4"])));
    await settle(w2.port, observers, "the twins' leaves");
    for (const s of seen) {
      for (let round = 0; round < 5; round++) {
        expect(s.kinds(`twin-${round}`)).toEqual(["connected", "disconnected"]);
        expect(increasing(s.versions(`twin-${round}`))).toBe(true);
      }
    }
  });

  it("announces each user a SIGKILLed worker leaves offline once, after the grace, seen on the other workers", async () => {
    const [w0, w1, w2] = workers as [(typeof workers)[0], (typeof workers)[0], (typeof workers)[0]];
    const observers = [await connectClient(w0.port, "observer-0", clients), await connectClient(w1.port, "observer-1", clients)];
    const seen = observers.map(recordTransitions);
    for (const observer of observers) await observer.timeout(10_000).emitWithAck("join", "room:lobby");
    const doomed = ["kim", "lee", "max", "ned", "ola"];
    for (const userId of doomed) await connectClient(w2.port, userId, clients);
    const kim = clients.at(-doomed.length)!;
    await kim.timeout(10_000).emitWithAck("join", "room:lobby");
    await connectClient(w2.port, "sam", clients);
    await connectClient(w0.port, "sam", clients); // sam stays online through worker 0
    await settle(w0.port, observers, "everyone in");

    const restarts = cluster.events.filter((e) => e.event === "listening").length;
    const killedAt = Date.now();
    process.kill(w2.pid, "SIGKILL");
    await until("the leaves", () => seen.forEach((s) => doomed.forEach((u) => expect(s.kinds(u).at(-1)).toBe("disconnected"))), 10_000);
    console.log(`leaves of a SIGKILLed worker's users seen by observers ${Date.now() - killedAt} ms after the kill (grace 500 ms)`);
    await settle(w0.port, observers, "the dead worker's leaves");
    for (const s of seen) {
      for (const userId of doomed.filter((u) => u !== "kim")) expect(s.kinds(userId), userId).toEqual(["connected", "disconnected"]);
      expect(s.kinds("kim")).toEqual(["connected", "joined:room:lobby", "left:room:lobby", "disconnected"]);
      expect(increasing(s.versions("kim"))).toBe(true);
      expect(s.kinds("sam")).toEqual(["connected"]);
    }
    expect(((await getJson(w1.port, "/users")).body.users as string[]).sort()).toEqual(["observer-0", "observer-1", "sam"]);

    // the restarted worker starts clean and sees the same truth
    const [restarted] = (await cluster.waitFor("the killed worker's replacement", (e) => e.event === "listening", restarts + 1)).slice(restarts);
    workers[2] = { id: restarted!.id!, pid: restarted!.pid!, port: restarted!.port! };
    expect(((await getJson(restarted!.port!, "/users")).body.users as string[]).sort()).toEqual(["observer-0", "observer-1", "sam"]);
  });

  it("answers queries on the other workers while a worker restarts", async () => {
    const [w0, w1, w2] = workers as [(typeof workers)[0], (typeof workers)[0], (typeof workers)[0]];
    await connectClient(w0.port, "ann", clients);
    await connectClient(w2.port, "bea", clients);
    await until("ann and bea counted", async () => expect((await getJson(w1.port, "/count")).body.count).toBe(2));

    const restarts = cluster.events.filter((e) => e.event === "listening").length;
    let stop = false;
    const answers: Array<{ status: number; body: Record<string, unknown> }> = [];
    const querying = (async () => {
      while (!stop) {
        answers.push(await getJson(w0.port, "/online?userId=ann"), await getJson(w1.port, "/count"));
      }
    })();
    process.kill(w2.pid, "SIGKILL");
    const [restarted] = (await cluster.waitFor("the killed worker's replacement", (e) => e.event === "listening", restarts + 1)).slice(restarts);
    workers[2] = { id: restarted!.id!, pid: restarted!.pid!, port: restarted!.port! };
    await connectClient(restarted!.port!, "cid", clients);
    expect((await getJson(restarted!.port!, "/online?userId=cid")).body.online).toBe(true);
    stop = true;
    await querying;
    expect(answers.length).toBeGreaterThan(2);
    for (const answer of answers) expect(answer.status).toBe(200);
    expect(answers.filter((a) => "online" in a.body).every((a) => a.body.online === true)).toBe(true);
    // bea went with the killed worker (after the grace); cid came with its replacement
    await until("bea gone, cid in", async () => expect(((await getJson(w1.port, "/users")).body.users as string[]).sort()).toEqual(["ann", "cid"]));
  });
});

describe("@presence/cluster: a storm of connections over real workers (json serialization)", () => {
  let cluster: ClusterFixture;
  let workers: Array<{ id: number; pid: number; port: number }>;
  const clients: ClientSocket[] = [];

  beforeAll(async () => {
    cluster = ClusterFixture.start({ WORKERS: "3" });
    workers = await cluster.workers(3);
  });
  afterAll(async () => {
    for (const client of clients.splice(0)) client.close();
    await cluster?.stop();
  });

  it("announces exactly one join and one leave per user, in far fewer IPC messages than calls", { timeout: 90_000 }, async () => {
    const observer = await connectClient(workers[0]!.port, "observer", clients);
    const seen = recordTransitions(observer);
    const statsOf = async () => Promise.all(workers.map(async ({ port }) => (await getJson(port, "/stats")).body as { messagesSent: number; messagesReceived: number; calls: number }));
    const before = await statsOf();

    const users = Array.from({ length: 300 }, (_, i) => `storm-${i}`);
    // every user on one worker, a third of them with a second tab on the next worker
    const storm = await Promise.all([
      ...users.map((userId, i) => connectClient(workers[i % 3]!.port, userId, clients)),
      ...users.filter((_, i) => i % 3 === 0).map((userId, i) => connectClient(workers[(i + 1) % 3]!.port, userId, clients)),
    ]);
    await until("every storm user online", () => expect(seen.count("connected", "storm-")).toBe(users.length), 30_000);
    for (const socket of storm) socket.close();
    await until("every storm user offline", () => expect(seen.count("disconnected", "storm-")).toBe(users.length), 30_000);
    await settle(workers[0]!.port, [observer], "the storm over");
    for (const userId of users) {
      expect(seen.kinds(userId), userId).toEqual(["connected", "disconnected"]);
      expect(increasing(seen.versions(userId)), userId).toBe(true);
    }
    expect((await getJson(workers[1]!.port, "/users")).body.users).toEqual(["observer"]);

    const after = await statsOf();
    const delta = (key: "messagesSent" | "messagesReceived" | "calls") => after.reduce((sum, s, i) => sum + s[key] - before[i]![key], 0);
    const calls = delta("calls");
    const messages = delta("messagesSent") + delta("messagesReceived");
    console.log(`storm: ${storm.length} connections, ${calls} calls, ${messages} IPC messages (${(messages / calls).toFixed(2)} per call)`);
    expect(calls).toBeGreaterThanOrEqual(2 * storm.length); // a connect and a disconnect each, at least
    expect(messages).toBeLessThan(calls); // unbatched, it would be 3 per call that decides (call, answer, acknowledgement)
  });
});

describe("@presence/cluster in a worker whose primary never called setupPrimary()", () => {
  it("fails at construction, saying what to call", async () => {
    const cluster = ClusterFixture.start({ WORKERS: "1", NO_PRESENCE_PRIMARY: "1" });
    try {
      const [error] = await cluster.waitFor("the worker's setup error", (e) => e.event === "setup-error");
      expect(error!.code).toBe("CLUSTER_NOT_SET_UP");
      expect(error!.message).toMatch(/call setupPrimary\(\) from @presence\/cluster in the primary before forking/);
    } finally {
      await cluster.stop();
    }
  });
});
