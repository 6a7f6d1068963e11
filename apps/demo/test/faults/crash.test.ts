import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { sleep } from "../demo-process";
import { Deployment, TIMING, count, watch, workerPids } from "./deployment";

const RESILIENT = { reconnection: true, reconnectionDelay: 50, reconnectionDelayMax: 100, randomizationFactor: 0 };

describe("faults: processes killed and paused", () => {
  let deployment: Deployment | undefined;
  afterEach(async () => {
    await deployment?.stop();
    deployment = undefined;
  });

  it("a worker killed with SIGKILL: its users leave once, reconnecting users do not flap", async () => {
    deployment = await Deployment.start(["--leave-delay-ms", "1500"]);
    const [a, b] = deployment.instances as [NonNullable<Deployment["instances"][0]>, NonNullable<Deployment["instances"][0]>];
    const observers = [watch(await deployment.open("observer-1", b)), watch(await deployment.open("observer-2", b))];
    const fragile: ClientSocket[] = [];
    for (let i = 0; i < 12; i++) fragile.push(await deployment.open(`fragile-${i}`, a));
    for (let i = 0; i < 12; i++) await deployment.open(`resilient-${i}`, a, RESILIENT);
    await deployment.open("both", a);
    await deployment.open("both", b);
    await deployment.convergence(5000);

    const [victim] = workerPids(a);
    process.kill(victim!, "SIGKILL");
    await sleep(200);
    const goneUsers = fragile.flatMap((socket, i) => (socket.connected ? [] : [`fragile-${i}`]));
    expect(goneUsers.length).toBeGreaterThan(0);
    expect(goneUsers.length).toBeLessThan(12);

    await deployment.convergence(15_000);
    await sleep(1000);
    for (const { joins, leaves } of observers) {
      for (const user of goneUsers) expect(count(leaves, user), `leaves of ${user}`).toBe(1);
      expect(leaves.filter((u) => !goneUsers.includes(u))).toEqual([]);
      for (let i = 0; i < 12; i++) expect(count(joins, `resilient-${i}`), `joins of resilient-${i}`).toBe(1);
      expect(count(leaves, "both")).toBe(0);
    }
  });

  it("a whole instance killed (primary and workers): its users leave once, across instances", async () => {
    deployment = await Deployment.start();
    const [a, b] = deployment.instances as [NonNullable<Deployment["instances"][0]>, NonNullable<Deployment["instances"][0]>];
    const observers = [watch(await deployment.open("observer-1", a)), watch(await deployment.open("observer-2", a))];
    for (let i = 0; i < 10; i++) await deployment.open(`on-b-${i}`, b);
    await deployment.open("both", a);
    await deployment.open("both", b);
    await deployment.convergence(5000);

    for (const pid of [b.child.pid!, ...workerPids(b)]) process.kill(pid, "SIGKILL");
    await sleep(200);
    await deployment.convergence(15_000);
    expect(await deployment.presence(a)).toEqual(["both", "observer-1", "observer-2"]);
    await sleep(1000);
    for (const { leaves } of observers) {
      expect(leaves.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `on-b-${i}`).sort());
    }
    // nothing of the dead instance is left in Redis: only the 2 live workers' processes
    const processes = deployment.redis.cli("ZRANGE", "{presence}:processes", "0", "-1").split("\n").filter(Boolean);
    expect(processes).toHaveLength(2);
    const connectionKeys = deployment.keys().filter((key) => key.startsWith("{presence}:connections:"));
    expect(connectionKeys.every((key) => processes.includes(key.slice("{presence}:connections:".length)))).toBe(true);
  });

  it("a worker paused with SIGSTOP past its lease, then resumed: back to the truth, never negative", async () => {
    deployment = await Deployment.start();
    const [a] = deployment.instances as [NonNullable<Deployment["instances"][0]>];
    const tabs: ClientSocket[] = [];
    for (let i = 0; i < 16; i++) tabs.push(await deployment.open(`user-${i % 10}`, a));
    await deployment.convergence(5000);

    const [paused] = workerPids(a);
    process.kill(paused!, "SIGSTOP");
    await sleep(TIMING.leaseTimeoutMs + 3 * TIMING.heartbeatMs);
    // meanwhile some tabs close: whichever worker held them must let them go
    for (const tab of tabs.slice(0, 4)) deployment.close(tab);
    await deployment.assertNoNegativeCounts();
    process.kill(paused!, "SIGCONT");

    await deployment.convergence(15_000);
    await sleep(2 * TIMING.heartbeatMs);
    expect(await deployment.presence(a)).toEqual(deployment.truth());
  });
});
