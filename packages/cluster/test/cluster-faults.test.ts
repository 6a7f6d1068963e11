import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import {
  ClusterFixture,
  connectClient,
  getJson,
  increasing,
  primaryState,
  recordTransitions,
  settle,
  sleep,
  until,
  type WorkerInfo,
} from "./cluster-fixture";

/**
 * Faults provoked for real on a forked Node cluster: blocked event loops,
 * a stopped primary, stopped and killed workers, a rolling restart. What is
 * checked is each observer's own log, per user, of what the stores
 * announced: exact, in version order. Every wait has a deadline and says
 * what it waited for; nothing is asserted on time.
 */
describe("@presence/cluster under faults, on real cluster workers", () => {
  let cluster: ClusterFixture | undefined;
  const clients: ClientSocket[] = [];
  const start = async (env: Record<string, string>, count = 3): Promise<WorkerInfo[]> => {
    cluster = ClusterFixture.start({ WORKERS: String(count), NO_RESTART: "1", ...env });
    return cluster.workers(count);
  };
  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await cluster?.stop();
    cluster = undefined;
  });

  it("a worker whose event loop blocks as a user's last tab closes there, and the user reopens on another: observers end with the user connected, in version order", { timeout: 120_000 }, async () => {
    const [w0, w1, w2] = (await start({})) as [WorkerInfo, WorkerInfo, WorkerInfo];
    const observers = [await connectClient(w0.port, "observer-0", clients), await connectClient(w2.port, "observer-2", clients)];
    const seen = observers.map(recordTransitions);
    const rounds = 12;
    for (let round = 0; round < rounds; round++) {
      const user = `hopper-${round}`;
      const tab = await connectClient(w1.port, user, clients);
      await until(`${user} online`, async () => expect((await getJson(w0.port, `/online?userId=${user}`)).body.online).toBe(true));
      // 20-300 ms, and a reopen at once or a little later: the disconnect's answer reaches a blocked worker
      const blockMs = 20 + Math.floor((280 * round) / (rounds - 1));
      await getJson(w1.port, `/block-after-disconnect?ms=${blockMs}`);
      tab.close();
      if (round % 3 === 1) await sleep(5);
      if (round % 3 === 2) await sleep(40);
      await connectClient(w2.port, user, clients);
      await until(`${user} online again`, async () => expect((await getJson(w0.port, `/online?userId=${user}`)).body.online).toBe(true));
    }
    await settle(w0.port, observers, "every round announced");
    for (let round = 0; round < rounds; round++) {
      const user = `hopper-${round}`;
      for (const s of seen) {
        const kinds = s.kinds(user);
        expect(kinds.at(-1), `${user}: ${kinds.join(", ")}`).toBe("connected");
        expect(kinds.length % 2, `${user}: ${kinds.join(", ")}`).toBe(1); // connected, (disconnected, connected)*
        expect(increasing(s.versions(user)), `${user}'s versions ${s.versions(user).join(", ")}`).toBe(true);
      }
    }
  });

  it("a reply that comes after the call timed out (the primary stopped): each join announced exactly once", { timeout: 60_000 }, async () => {
    const [w0, w1] = (await start({ TIMEOUT_MS: "600" }, 2)) as [WorkerInfo, WorkerInfo];
    const observer = await connectClient(w0.port, "observer", clients);
    const seen = recordTransitions(observer);
    const member = await connectClient(w1.port, "member", clients);
    await until("member online", async () => expect((await getJson(w0.port, "/online?userId=member")).body.online).toBe(true));
    // stopped past the first try only (the binding's retry carries the same request id), then past all three tries
    for (const [i, stopMs] of [1000, 3500].entries()) {
      process.kill(cluster!.primaryPid, "SIGSTOP");
      const late = connectClient(w1.port, `late-${i}`, clients);
      const joined = member.timeout(20_000).emitWithAck("join", `room:late-${i}`);
      await sleep(stopMs);
      process.kill(cluster!.primaryPid, "SIGCONT");
      await late;
      await joined;
      await until(`late-${i} counted`, async () => expect((await getJson(w0.port, `/online?userId=late-${i}`)).body.online).toBe(true));
      await until(`member in room:late-${i}`, () => expect(seen.kinds("member")).toContain(`joined:room:late-${i}`));
    }
    await settle(w0.port, [observer], "the late answers announced");
    expect(seen.kinds("late-0")).toEqual(["connected"]);
    expect(seen.kinds("late-1")).toEqual(["connected"]);
    expect(seen.kinds("member")).toEqual(["connected", "joined:room:late-0", "joined:room:late-1"]);
    expect(increasing(seen.versions("member"))).toBe(true);
  });

  it("the announcer stopped (SIGSTOP): a dead worker's leaves still arrive through another worker, each exactly once", { timeout: 60_000 }, async () => {
    const [w0, w1, w2] = (await start({ LEAVE_GRACE_MS: "1500", ANNOUNCE_TIMEOUT_MS: "500" })) as [WorkerInfo, WorkerInfo, WorkerInfo];
    const observers = [await connectClient(w0.port, "observer-0", clients), await connectClient(w0.port, "observer-1", clients)];
    const seen = observers.map(recordTransitions);
    const doomed = Array.from({ length: 20 }, (_, i) => `doomed-${i}`);
    for (const user of doomed) await connectClient(w2.port, user, clients);
    await until("the doomed online", async () => expect((await getJson(w0.port, "/count")).body.count).toBe(doomed.length + 2));
    const before = (await primaryState(w0.port)).reassigned;
    process.kill(w2.pid, "SIGKILL");
    await until("the primary to hear of the death", async () => expect((await primaryState(w0.port)).storesInGrace).toBe(1));
    await getJson(w1.port, "/count"); // worker 1 is heard last: the hand-off will go to it
    process.kill(w1.pid, "SIGSTOP");
    try {
      const stoppedAt = Date.now();
      // the grace (1.5 s), worker 1's deadline (0.5 s), and slack for a loaded machine
      await until("the leaves through worker 0", () => seen.forEach((s) => expect(s.count("disconnected", "doomed-")).toBe(doomed.length)), 10_000);
      console.log(`a stopped announcer: the leaves arrived ${Date.now() - stoppedAt} ms after it was stopped`);
    } finally {
      process.kill(w1.pid, "SIGCONT"); // it reads its expired hand-off: it must announce none of it
    }
    expect((await getJson(w1.port, "/count")).body.count).toBe(2);
    await settle(w0.port, observers, "the stopped announcer resumed");
    expect((await primaryState(w0.port)).reassigned - before).toBe(doomed.length);
    for (const s of seen) for (const user of doomed) expect(s.kinds(user), user).toEqual(["connected", "disconnected"]);
  });

  it("the announcer killed midway through a hand-off of 500 leaves: each announced exactly once in all", { timeout: 180_000 }, async () => {
    const [w0, w1, w2] = (await start({ LEAVE_GRACE_MS: "1500", ANNOUNCE_WORK_MS: "1" })) as [WorkerInfo, WorkerInfo, WorkerInfo];
    const observers = [await connectClient(w0.port, "observer-0", clients), await connectClient(w0.port, "observer-1", clients)];
    const seen = observers.map(recordTransitions);
    const doomed = Array.from({ length: 500 }, (_, i) => `many-${i}`);
    for (let i = 0; i < doomed.length; i += 50) await Promise.all(doomed.slice(i, i + 50).map((user) => connectClient(w2.port, user, clients)));
    await until("the 500 online", async () => expect((await getJson(w0.port, "/count")).body.count).toBe(doomed.length + 2), 30_000);
    await settle(w0.port, observers, "the 500 joins announced");
    process.kill(w2.pid, "SIGKILL");
    await until("the primary to hear of the death", async () => expect((await primaryState(w0.port)).storesInGrace).toBe(1));
    await getJson(w1.port, "/count"); // worker 1 is heard last: the hand-off will go to it
    await until("worker 1 to be announcing", () => expect(seen[0]!.count("disconnected", "many-")).toBeGreaterThanOrEqual(100), 15_000);
    process.kill(w1.pid, "SIGKILL");
    const atKill = seen[0]!.count("disconnected", "many-");
    await until("every leave announced", () => seen.forEach((s) => expect(s.count("disconnected", "many-")).toBeGreaterThanOrEqual(doomed.length)), 30_000);
    await settle(w0.port, observers, "the hand-off finished by worker 0");
    console.log(`killed with ${atKill} of 500 leaves seen; ${(await primaryState(w0.port)).reassigned} handed on`);
    expect(atKill).toBeLessThan(doomed.length); // it died midway
    for (const s of seen) {
      const wrong = doomed.filter((user) => s.kinds(user).join() !== "connected,disconnected");
      expect(wrong.map((user) => `${user}: ${s.kinds(user).join(", ")}`)).toEqual([]);
    }
  });

  it("a rolling restart: users of a closed (SIGTERM) and a killed (SIGKILL) worker who reconnect within the grace are never announced leaving", { timeout: 60_000 }, async () => {
    const [w0, w1, w2] = (await start({})) as [WorkerInfo, WorkerInfo, WorkerInfo]; // the default grace, 2000 ms
    const observers = [await connectClient(w0.port, "observer-0", clients), await connectClient(w0.port, "observer-1", clients)];
    const seen = observers.map(recordTransitions);
    const stays = { [w1.pid]: ["ada", "bo", "cy"], [w2.pid]: ["dee", "eli", "fay"] };
    const leaves = { [w1.pid]: ["gus"], [w2.pid]: ["hal"] };
    for (const worker of [w1, w2]) {
      for (const user of [...stays[worker.pid]!, ...leaves[worker.pid]!]) {
        const tab = await connectClient(worker.port, user, clients);
        await tab.timeout(10_000).emitWithAck("join", "room:lobby");
      }
    }
    await settle(w0.port, observers, "everyone in");
    process.kill(w1.pid, "SIGTERM"); // a deploy: its presence closes, then it exits
    process.kill(w2.pid, "SIGKILL"); // and one crashes
    // their clients come back on the worker that stays, within the grace
    for (const user of [...stays[w1.pid]!, ...stays[w2.pid]!]) {
      const tab = await connectClient(w0.port, user, clients);
      await tab.timeout(10_000).emitWithAck("join", "room:lobby");
    }
    await settle(w0.port, observers, "the graces over");
    for (const s of seen) {
      for (const user of [...stays[w1.pid]!, ...stays[w2.pid]!]) expect(s.kinds(user), user).toEqual(["connected", "joined:room:lobby"]);
      for (const user of [...leaves[w1.pid]!, ...leaves[w2.pid]!]) {
        expect(s.kinds(user), user).toEqual(["connected", "joined:room:lobby", "left:room:lobby", "disconnected"]);
        expect(increasing(s.versions(user))).toBe(true);
      }
    }
    expect(((await getJson(w0.port, "/users")).body.users as string[]).sort()).toEqual(["ada", "bo", "cy", "dee", "eli", "fay", "observer-0", "observer-1"]);
  });
});
