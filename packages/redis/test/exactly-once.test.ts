import { afterEach, describe, expect, it } from "vitest";
import { deployment, sleep, waitFor } from "./harness";
import { useRedis } from "./redis-fixture";

// Each test provokes one of the mechanisms of issue 13 on a real
// redis-server, through per-store TCP proxies that lose replies or cut a
// store off, and checks what was reported: every transition once.
const redis = useRedis();
const FAST = { heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500 };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

function setup(options = FAST) {
  const d = deployment(redis.server.port, options);
  cleanups.push(() => d.closeAll());
  return d;
}

const count = (log: string[], entry: string) => log.filter((e) => e === entry).length;
const users = async (key: string) => redis.admin.hgetall(key);

describe("exactly once, under the faults of issue 13", () => {
  it("1. a tab closes during a partition past the lease: its leave is announced once", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await d.call({ type: "connected", userId: "alice" }, a.store.connect("tab-1a", "alice"));
    await d.call({ type: "connected", userId: "bob" }, a.store.connect("tab-1b", "bob"));
    // bob's tab closes: the disconnect runs, its reply is lost, then the partition starts
    const lost = a.proxy.dropReplyTo("tab-1b");
    const bobLeft = d.call({ type: "disconnected", userId: "bob" }, a.store.disconnect("tab-1b"));
    await lost;
    a.proxy.cut();
    await bobLeft;
    // alice's tab closes while cut off: never reaches Redis
    await d.call({ type: "disconnected", userId: "alice" }, a.store.disconnect("tab-1a"));
    await waitFor("the survivor to reap the cut-off process", async () => (await b.store.usersCount()) === 0, 5000);
    a.proxy.restore();
    await waitFor("the cut-off process to recover", async () => a.store.processId !== undefined && (await redis.admin.zscore(b.store.keys.processes, a.store.processId)) !== null, 5000);
    await sleep(3 * FAST.heartbeatMs);
    expect(count(d.log, "-alice")).toBe(1);
    expect(count(d.log, "-bob")).toBe(1);
    expect(await users(b.store.keys.users)).toEqual({});
  });

  it("2. a cleanup chunk whose reply is lost loses no leave", async () => {
    const d = setup({ ...FAST, cleanupChunkSize: 7 } as typeof FAST);
    const [victim, cleaner] = [await d.store(), await d.store()];
    for (let i = 0; i < 20; i++) await victim.store.connect(`v-${i}`, `user-${i}`);
    d.log.length = 0;
    const lost = cleaner.proxy.dropReplyTo("\r\n7\r\n$7\r\nexpired"); // a chunk of 7, not the claim
    victim.proxy.cut(); // a lost host
    await lost;
    await waitFor("the cleanup to finish", async () => (await redis.admin.hlen(cleaner.store.keys.users)) === 0 && (await redis.admin.hlen(cleaner.store.keys.cleanups)) === 0, 10_000);
    await waitFor("every leave to be announced", () => d.log.length >= 20, 5000);
    await sleep(3 * FAST.heartbeatMs);
    expect([...d.log].sort()).toEqual(Array.from({ length: 20 }, (_, i) => `-user-${i}`).sort());
  });

  it("3. Redis restarted empty: a leave in the window before the next heartbeat is announced", async () => {
    const d = setup({ heartbeatMs: 1000, leaseTimeoutMs: 2500, commandTimeoutMs: 500 });
    const [a, b] = [await d.store(), await d.store()];
    await d.call({ type: "connected", userId: "ann" }, a.store.connect("a1", "ann"));
    await d.call({ type: "connected", userId: "bob" }, a.store.connect("a2", "bob"));
    await d.call({ type: "connected", userId: "bob" }, b.store.connect("b1", "bob"));
    await redis.server.restart();
    await d.call({ type: "disconnected", userId: "ann" }, a.store.disconnect("a1"));
    await waitFor("ann's leave", () => d.log.includes("-ann"), 8000);
    await waitFor("bob back in Redis", async () => (await users(a.store.keys.users)).bob === "2", 8000);
    await sleep(1500);
    expect(d.log).toEqual(["+ann", "+bob", "-ann"]);
  });

  it("6. a cleanup interrupted by a Redis restart from persistence removes every connection once (no cursor)", async () => {
    const d = setup({ ...FAST, cleanupChunkSize: 50 } as typeof FAST);
    const [victim, cleaner] = [await d.store(), await d.store()];
    await Promise.all(Array.from({ length: 600 }, (_, i) => victim.store.connect(`v-${i}`, `user-${i}`)));
    d.log.length = 0;
    const lost = cleaner.proxy.dropReplyTo("\r\n50\r\n$7\r\nexpired");
    victim.proxy.cut();
    await lost;
    cleaner.proxy.cut(); // the cleaner is away while Redis restarts from what it saved mid-cleanup
    redis.server.cli("SAVE");
    await redis.server.restart({ fromSnapshot: true });
    cleaner.proxy.restore();
    await waitFor("the cleanup to finish", async () => (await redis.admin.hlen(cleaner.store.keys.users)) === 0, 15_000);
    await waitFor("every leave to be announced", () => d.log.length >= 600, 5000);
    await sleep(3 * FAST.heartbeatMs);
    expect(new Set(d.log).size).toBe(600);
    expect(d.log).toHaveLength(600);
  });

  it("7. Redis restored from an older snapshot: the process notices and republishes, announcing nothing twice", async () => {
    const d = setup();
    const a = await d.store();
    await d.call({ type: "connected", userId: "alice" }, a.store.connect("a1", "alice"));
    redis.server.cli("SAVE");
    await d.call({ type: "connected", userId: "bob" }, a.store.connect("a2", "bob"));
    await d.call({ type: "disconnected", userId: "alice" }, a.store.disconnect("a1"));
    await redis.server.restart({ fromSnapshot: true }); // alice back, bob gone, the process's record behind
    await waitFor("Redis to match the open connections again", async () => JSON.stringify(await users(a.store.keys.users)) === JSON.stringify({ bob: "1" }), 8000);
    await sleep(2 * FAST.leaseTimeoutMs);
    expect(await users(a.store.keys.users)).toEqual({ bob: "1" });
    expect(d.log).toEqual(["+alice", "+bob", "-alice"]);
  });

  it("8. a lost reply on a connect does not announce a second join for a user online elsewhere", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await d.call({ type: "connected", userId: "bob" }, b.store.connect("b1", "bob"));
    const lost = a.proxy.dropReplyTo("tab-8");
    const answer = d.call({ type: "connected", userId: "bob" }, a.store.connect("tab-8", "bob"));
    await lost;
    await answer;
    await waitFor("the lost reply to be settled", async () => (await users(a.store.keys.users)).bob === "2", 5000);
    await sleep(3 * FAST.heartbeatMs);
    expect(d.log).toEqual(["+bob"]);
  });

  it("9 and 10. a lost reply on recovery's republish, then a second failure: the user's return is announced once", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await d.call({ type: "connected", userId: "alice" }, a.store.connect("tab-9", "alice"));
    a.proxy.cut();
    await waitFor("the survivor to reap the cut-off process", () => d.log.includes("-alice"), 5000);
    const lost = a.proxy.dropReplyTo("r\r\n$5\r\ntab-9"); // the republish of tab-9
    a.proxy.restore();
    await lost;
    a.proxy.cut(); // and a second failure while that is in doubt
    await sleep(300);
    a.proxy.restore();
    await waitFor("alice's return", () => d.log.includes("+alice") && d.log.lastIndexOf("+alice") > d.log.indexOf("-alice"), 8000);
    await sleep(3 * FAST.heartbeatMs);
    expect(d.log).toEqual(["+alice", "-alice", "+alice"]);
    expect(await users(b.store.keys.users)).toEqual({ alice: "1" });
  });

  it("9b. a repeated connect in flight across a fence: the connection's rooms are republished, nobody hears it leave them", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await d.call({ type: "connected", userId: "alice" }, a.store.connect("tab-9b", "alice"));
    await a.store.join("tab-9b", "lobby");
    a.proxy.cut();
    // a repeat with new info, queued while cut off: it is what recovery finds in the queue
    const repeat = a.store.connect("tab-9b", "alice", { status: "back" }).catch(() => undefined);
    await waitFor("the survivor to reap the cut-off process", () => d.log.includes("-alice"), 5000);
    a.proxy.restore();
    await waitFor("alice back in the lobby", async () => (await b.store.isUserInRoom("alice", "lobby")) && (await b.store.userInfo("alice"))?.status === "back", 8000);
    await repeat;
    await sleep(3 * FAST.heartbeatMs);
    expect(await b.store.isUserInRoom("alice", "lobby")).toBe(true);
    expect(d.log.filter((entry) => entry.startsWith("lobby"))).toEqual(["lobby>alice", "lobby<alice", "lobby>alice"]);
  });

  it("11. non-ASCII connection ids and rooms: crash cleanup takes each membership out of its own room", async () => {
    const d = setup();
    const [victim, survivor] = [await d.store(), await d.store()];
    await victim.store.connect("ééé", "zoë");
    await victim.store.join("ééé", "lobby");
    await victim.store.join("ééé", "部屋");
    await survivor.store.connect("s1", "ann");
    await survivor.store.join("s1", "by");
    await survivor.store.join("s1", "屋");
    d.log.length = 0;
    victim.proxy.cut();
    await waitFor("the victim to be cleaned up", async () => (await survivor.store.usersCount()) === 1, 5000);
    await sleep(3 * FAST.heartbeatMs);
    expect([...d.log].sort()).toEqual(["-zoë", "lobby<zoë", "部屋<zoë"].sort());
    for (const room of ["lobby", "部屋"]) expect(await survivor.store.roomUsersCount(room)).toBe(0);
    for (const room of ["by", "屋"]) expect(await survivor.store.isUserInRoom("ann", room)).toBe(true);
  });

  it("12. recovery does not revert another process's updateInfo", async () => {
    const d = setup();
    const [a, b] = [await d.store(), await d.store()];
    await a.store.connect("a1", "alice", { status: "old" });
    await b.store.connect("b1", "alice");
    await b.store.updateInfo("alice", { status: "new" });
    a.proxy.cut();
    await waitFor("the survivor to reap the cut-off process", async () => (await users(b.store.keys.users)).alice === "1", 5000);
    a.proxy.restore();
    await waitFor("the cut-off process to republish", async () => (await users(b.store.keys.users)).alice === "2", 5000);
    expect(await b.store.userInfo("alice")).toEqual({ status: "new" });
  });

  it("13. a lost reply on a batch of 5,000 is settled by sending the batch once more while new calls go through", async () => {
    const d = setup({ ...FAST, commandTimeoutMs: 2000, maxBatchSize: 10_000 } as typeof FAST);
    const a = await d.store();
    await a.store.usersCount();
    await redis.admin.config("RESETSTAT");
    const lost = a.proxy.dropReplyTo("tab-13-0\r\n");
    const batch = Array.from({ length: 5000 }, (_, i) => a.store.connect(`tab-13-${i}`, `user-${i % 2500}`).catch(() => "in doubt"));
    await lost;
    const after = await a.store.connect("tab-13-late", "late"); // waits for the settlement, not for a republish
    expect(after).toBe(true);
    await Promise.all(batch);
    await waitFor("every join to be reported", () => d.log.filter((e) => e.startsWith("+user-")).length === 2500, 5000);
    const stats = String(await redis.admin.info("commandstats"));
    const calls = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    // the batch sent once more settles it (apply.lua answers from its record): no per-operation round trips
    expect(calls("hexists")).toBe(0);
    expect(calls("evalsha") + calls("eval")).toBeLessThan(30); // the batch, the late call, heartbeats
    expect(calls("hmget")).toBe(0);
    expect(await redis.admin.hlen(a.store.keys.users)).toBe(2501);
  });
});
