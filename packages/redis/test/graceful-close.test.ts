import { afterEach, describe, expect, it } from "vitest";
import { deployment, sleep, waitFor } from "./harness";
import { useRedis } from "./redis-fixture";

// A store that closes (a deploy's SIGTERM) while another process is alive
// keeps its connections for `leaveGraceMs`: a user back on another process
// within it is never announced leaving; one who is not is announced once,
// by a survivor.
const redis = useRedis();
const FAST = { heartbeatMs: 200, leaseTimeoutMs: 1000, commandTimeoutMs: 500 };
const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

describe("RedisStore close with a leave grace", () => {
  it("a rolling deploy is silent: users back elsewhere within the grace are never announced leaving", async () => {
    const d = deployment(redis.server.port, { ...FAST, leaveGraceMs: 1500 });
    cleanups.push(() => d.closeAll());
    const old = await d.store();
    const next = await d.store();
    await old.store.connect("a1", "alice");
    await old.store.connect("c1", "carol");
    await old.store.join("a1", "lobby");
    await old.store.close();
    // alice's client reconnects to the other process within the grace; carol's never does
    await next.store.connect("a2", "alice");
    await next.store.join("a2", "lobby");
    await waitFor("carol's leave, announced by the survivor after the grace", () => d.log.includes("-carol"), 10_000);
    await sleep(3 * FAST.heartbeatMs); // a second cleanup, or a leave of alice, would come now
    expect(d.log).toEqual(["+alice", "+carol", "lobby>alice", "-carol"]);
    expect(await next.store.isUserConnected("alice")).toBe(true);
    expect(await next.store.isUserInRoom("alice", "lobby")).toBe(true);
    expect(await next.store.usersCount()).toBe(1);
  });

  it("the last process of a deployment, or a grace of 0, removes its connections at once", async () => {
    for (const leaveGraceMs of [1500, 0]) {
      const d = deployment(redis.server.port, { ...FAST, leaveGraceMs });
      cleanups.push(() => d.closeAll());
      const only = await d.store();
      if (leaveGraceMs === 0) await d.store(); // another process is alive: the grace of 0 still removes at once
      await only.store.connect("b1", "bob");
      await only.store.close();
      expect(d.log, `grace ${leaveGraceMs}`).toEqual(["+bob", "-bob"]);
    }
  });
});
