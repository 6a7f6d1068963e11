import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { sleep } from "../demo-process";
import { Deployment, TIMING } from "./deployment";

describe("faults: Redis restarted and unreachable", () => {
  let deployment: Deployment | undefined;
  afterEach(async () => {
    await deployment?.stop();
    deployment = undefined;
  });

  async function populate(d: Deployment): Promise<ClientSocket[]> {
    const tabs: ClientSocket[] = [];
    for (let i = 0; i < 12; i++) tabs.push(await d.open(`user-${i % 8}`, d.instances[i % 2]));
    await d.convergence(5000);
    for (const userId of ["late-1", "late-2"]) await d.token(userId); // logins need no Redis; get them now
    return tabs;
  }

  it("Redis restarted empty (SHUTDOWN NOSAVE, same port): /api/presence comes back to the truth", async () => {
    deployment = await Deployment.start();
    const tabs = await populate(deployment);

    await deployment.redis.shutdownNoSave();
    // while Redis is gone, tabs close and open
    deployment.close(tabs[0]!);
    deployment.close(tabs[9]!);
    await deployment.open("late-1", deployment.instances[1]);
    await sleep(TIMING.heartbeatMs);
    await deployment.redis.restart();

    await deployment.convergence(15_000);
    expect(deployment.truth()).toContain("late-1");
  });

  it("Redis unreachable for longer than the lease, then back: the same", async () => {
    deployment = await Deployment.start();
    const tabs = await populate(deployment);

    deployment.redis.signal("SIGSTOP");
    deployment.close(tabs[1]!);
    deployment.close(tabs[10]!);
    const late = deployment.open("late-2", deployment.instances[0]);
    await sleep(2 * TIMING.leaseTimeoutMs);
    deployment.redis.signal("SIGCONT");
    await late;

    await deployment.convergence(15_000);
    await sleep(2 * TIMING.heartbeatMs);
    await deployment.convergence(0);
  });
});
