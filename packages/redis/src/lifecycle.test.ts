import { describe, expect, it } from "vitest";
import { FenceReason } from "./encoding";
import { FencedError } from "./errors";
import { Lifecycle, PHASES, nextPhase, type Phase, type RecoveryPlan } from "./lifecycle";

/** A lifecycle whose recovery attempts the test settles by hand. */
function lifecycle() {
  const attempts: Array<{ plan: RecoveryPlan; finish(done: boolean | Error): void }> = [];
  const phases: Phase[] = [];
  const errors: string[] = [];
  const machine = new Lifecycle({
    run: (plan) =>
      new Promise<boolean>((resolve, reject) => attempts.push({ plan, finish: (done) => (done instanceof Error ? reject(done) : resolve(done)) })),
    entered: (phase) => phases.push(phase),
    error: (error) => errors.push(error.message),
  });
  return { machine, attempts, phases, errors };
}

const fenced = (processId: string, reason = FenceReason.Gone) => new FencedError(processId, reason);

describe("the lifecycle's phases", () => {
  it("changes phase only as the table says", () => {
    expect(nextPhase("registering", "recovered")).toBe("live");
    expect(nextPhase("live", "fenced")).toBe("fenced");
    expect(nextPhase("fenced", "recover")).toBe("recovering");
    expect(nextPhase("recovering", "failed")).toBe("fenced");
    expect(nextPhase("recovering", "recovered")).toBe("live");
    // a recovery that ends after a new fence came in is stale
    expect(nextPhase("fenced", "recovered")).toBe("fenced");
    // nothing but closed leaves closing, nothing leaves closed
    for (const event of ["recover", "recovered", "failed", "fenced", "close"] as const) expect(nextPhase("closing", event)).toBe("closing");
    expect(nextPhase("closing", "closed")).toBe("closed");
    expect(Object.values(PHASES.closed)).toEqual([]);
    for (const phase of Object.keys(PHASES) as Phase[]) if (phase !== "closed") expect(nextPhase(phase, "close"), phase).toBe("closing");
  });
});

describe("Lifecycle", () => {
  it("registers, goes live, and recovers from a fence of the id it writes under", async () => {
    const { machine, attempts, phases } = lifecycle();
    expect(machine.phase).toBe("registering");
    const registering = machine.recover();
    expect(machine.recover()).toBe(registering); // one attempt at a time
    machine.adopt("p1", Date.now(), 1000, 0);
    attempts[0]!.finish(true);
    await registering;
    expect(machine.phase).toBe("live");
    expect(machine.plan).toBeUndefined();
    expect(machine.leaseHolds).toBe(true);

    machine.fence(fenced("an-old-id")); // an older id changes nothing
    expect(machine.phase).toBe("live");
    machine.fence(fenced("p1", FenceReason.Behind));
    expect(machine.phase).toBe("fenced");
    expect(machine.plan).toMatchObject({ fence: { processId: "p1", reason: "behind" }, processId: undefined, loss: undefined });
    const recovering = machine.recover();
    expect(machine.phase).toBe("recovering");
    machine.adopt("p2", Date.now(), 1000, 5);
    expect(machine.retired).toEqual(new Map([["p1", 5]]));
    attempts[1]!.finish(true);
    await recovering;
    expect([machine.phase, machine.processId]).toEqual(["live", "p2"]);
    expect(phases).toEqual(["live", "fenced", "recovering", "live"]);
  });

  it("keeps the fence on and the plan whole when an attempt fails, and carries on from it", async () => {
    const { machine, attempts, errors } = lifecycle();
    const first = machine.recover();
    machine.adopt("p1", Date.now(), 1000, 0);
    attempts[0]!.finish(true);
    await first;
    machine.fence(fenced("p1"));
    const attempt = machine.recover();
    const plan = machine.plan!;
    plan.loss = { before: new Set(["u:alice"]), joined: new Map(), decided: new Set(), foundAt: 0 };
    machine.adopt("p2", Date.now(), 1000, 0);
    attempts[1]!.finish(new Error("Redis did not answer the cleanup"));
    await attempt;
    expect(machine.phase).toBe("fenced");
    expect(errors).toEqual(["Redis did not answer the cleanup"]);
    expect(machine.plan).toBe(plan); // nothing dropped: the account of the loss, the id registered
    expect(plan).toMatchObject({ processId: "p2", loss: { before: new Set(["u:alice"]) } });
    const retry = machine.recover();
    expect(attempts[2]!.plan).toBe(plan);
    attempts[2]!.finish(true);
    await retry;
    expect(machine.phase).toBe("live");
  });

  it("a fence of the id a recovery registered makes it register anew; its success is then stale", async () => {
    const { machine, attempts } = lifecycle();
    const first = machine.recover();
    machine.adopt("p1", Date.now(), 1000, 0);
    attempts[0]!.finish(true);
    await first;
    machine.fence(fenced("p1"));
    const attempt = machine.recover();
    machine.fence(fenced("p1")); // the id it recovers from, again: expected, no change
    expect(machine.phase).toBe("recovering");
    machine.adopt("p2", Date.now(), 1000, 0);
    machine.fence(fenced("p2")); // the new id, fenced in turn
    expect(machine.phase).toBe("fenced");
    expect(machine.plan).toMatchObject({ processId: undefined, republished: false, fence: { processId: "p2" } });
    attempts[1]!.finish(true);
    await attempt;
    expect(machine.phase).toBe("fenced"); // stale: the next heartbeat recovers again
  });

  it("an attempt that fails on a fence of the id it registered registers anew next time", async () => {
    const { machine, attempts } = lifecycle();
    const first = machine.recover();
    machine.adopt("p1", Date.now(), 1000, 0);
    attempts[0]!.finish(true);
    await first;
    machine.fence(fenced("p1"));
    const attempt = machine.recover();
    machine.adopt("p2", Date.now(), 1000, 0);
    attempts[1]!.finish(fenced("p2")); // e.g. its cleanup of p1 found p2's lease gone
    await attempt;
    expect(machine.phase).toBe("fenced");
    expect(machine.plan).toMatchObject({ processId: undefined, fence: { processId: "p2" } });
  });

  it("stays registering until the first registration succeeds", async () => {
    const { machine, attempts } = lifecycle();
    const first = machine.recover();
    attempts[0]!.finish(new Error("Redis is away"));
    await first;
    expect(machine.phase).toBe("registering");
    const second = machine.recover();
    machine.adopt("p1", Date.now(), 1000, 0);
    attempts[1]!.finish(true);
    await second;
    expect(machine.phase).toBe("live");
  });

  it("closes from any phase, once, and starts no recovery while closing", async () => {
    const { machine, attempts } = lifecycle();
    expect(machine.close()).toBe("registering");
    expect(machine.closing).toBe(true);
    await machine.recover();
    expect(attempts).toHaveLength(0);
    machine.fence(fenced("p1"));
    expect(machine.phase).toBe("closing");
    machine.closed();
    expect(machine.phase).toBe("closed");
  });
});
