import { StoreUnavailableError } from "@presence/core";
import { describe, expect, it } from "vitest";
import { FenceReason } from "./encoding";
import { FencedError } from "./errors";
import type { Operation, OperationOutcome } from "./operations";
import { WriteQueue, type BatchApplier, type PendingWrite } from "./write-queue";

/** Waits for `check`, failing with `what` after a deadline. */
async function until(what: string, check: () => boolean, timeoutMs = 2000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
}

type Call = { processId: string; seq: number; operations: readonly Operation[]; answer(outcomes: OperationOutcome[]): void; refuse(error: Error): void };

/** apply.lua as a test drives it: every call waits for the test to answer it. */
function fakeRedis() {
  const calls: Call[] = [];
  /** ack.lua's calls, as "process#seq". */
  const acks: string[] = [];
  const applier: BatchApplier = {
    apply: (processId, seq, operations) =>
      new Promise((resolve, reject) => calls.push({ processId, seq, operations, answer: resolve, refuse: reject })),
    ack: async (processId, seq) => {
      acks.push(`${processId}#${seq}`);
    },
  };
  return { calls, applier, acks };
}

const connect = (n: number): Operation => ({ kind: "connect", connectionId: `c${n}`, slot: 0, userId: `u${n}`, info: "" });
const transition = (version: number): OperationOutcome => ({ type: "transition", version });

/** A write that records what happened to it. */
function write(operation: Operation, extra: Partial<PendingWrite> = {}) {
  const seen: string[] = [];
  const pending: PendingWrite = {
    operation,
    queuedAt: Date.now(),
    deliver: (outcome, processId, late) => seen.push(`deliver ${outcome.type}${outcome.type === "transition" ? ` v${outcome.version}` : ""} under ${processId}${late ? " late" : ""}`),
    fail: (error) => seen.push(`fail ${error.constructor.name}`),
    drop: () => seen.push("drop"),
    ...extra,
  };
  return { pending, seen };
}

const options = { maxBatchSize: 100, commandTimeoutMs: 1000, settleRetryMs: 1 };

describe("WriteQueue", () => {
  it("sends nothing until started, then one batch at a time, coalescing what was called meanwhile", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, options, () => {});
    const [a, b, c] = [write(connect(1)), write(connect(2)), write(connect(3))];
    queue.push(a.pending);
    await new Promise((resolve) => setImmediate(resolve));
    expect(redis.calls).toHaveLength(0); // held: not registered yet
    queue.start("p1");
    await until("batch 1", () => redis.calls.length === 1);
    queue.push(b.pending);
    queue.push(c.pending);
    await new Promise((resolve) => setImmediate(resolve));
    expect(redis.calls).toHaveLength(1); // one in flight at a time
    redis.calls[0]!.answer([transition(7)]);
    await until("batch 2", () => redis.calls.length === 2);
    expect(redis.calls.map(({ processId, seq, operations }) => [processId, seq, operations.length])).toEqual([
      ["p1", 1, 1],
      ["p1", 2, 2],
    ]);
    redis.calls[1]!.answer([{ type: "unchanged" }, transition(8)]);
    await until("batch 2 delivered", () => c.seen.length === 1);
    expect([a.seen, b.seen, c.seen]).toEqual([["deliver transition v7 under p1"], ["deliver unchanged under p1"], ["deliver transition v8 under p1"]]);
    expect(queue.acked).toBe(2);
    // each batch that decided a transition is acked once announced
    await until("the queue to be idle", () => queue.idle);
    expect(redis.acks).toEqual(["p1#1", "p1#2"]);
  });

  it("sends no ack for a batch that decided no transition, or whose transitions a cleaner took", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, options, () => {});
    const [a, b] = [write(connect(1)), write(connect(2))];
    queue.start("p1");
    queue.push(a.pending);
    await until("batch 1", () => redis.calls.length === 1);
    redis.calls[0]!.answer([{ type: "unchanged" }]);
    await until("batch 1 delivered", () => a.seen.length === 1);
    queue.push(b.pending);
    await until("batch 2", () => redis.calls.length === 2);
    redis.calls[1]!.answer([{ type: "transition", version: 3, taken: true }]);
    await until("batch 2 delivered", () => b.seen.length === 1);
    await until("the queue to be idle", () => queue.idle);
    expect(redis.acks).toEqual([]);
  });

  it("tells Redis a batch was announced only after every write of it was delivered (a kill between them leaves the record to the cleaner)", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, options, () => {});
    const acksAtDelivery: string[][] = [];
    const writes = [1, 2].map((n) => write(connect(n), { deliver: () => void acksAtDelivery.push([...redis.acks]) }));
    queue.start("p1");
    for (const { pending } of writes) queue.push(pending);
    await until("batch 1", () => redis.calls.length === 1);
    redis.calls[0]!.answer([transition(1), transition(2)]);
    await until("the ack", () => redis.acks.length === 1);
    expect(acksAtDelivery).toEqual([[], []]);
    expect(redis.acks).toEqual(["p1#1"]);
  });

  it("settles a lost reply by sending the same batch again under the same number, delivering late", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, options, () => {});
    const [a, b] = [write(connect(1)), write(connect(2))];
    queue.start("p1");
    queue.push(a.pending);
    await until("batch 1", () => redis.calls.length === 1);
    queue.push(b.pending);
    redis.calls[0]!.refuse(new StoreUnavailableError("the reply was lost"));
    await until("the batch to be sent again", () => redis.calls.length === 2);
    expect(a.seen).toEqual(["fail StoreUnavailableError"]); // its caller is answered at once
    expect([redis.calls[1]!.seq, redis.calls[1]!.operations]).toEqual([1, [connect(1)]]); // unchanged, b waits behind it
    redis.calls[1]!.refuse(new StoreUnavailableError("Redis is away"));
    await until("a retry", () => redis.calls.length === 3);
    redis.calls[2]!.answer([transition(9)]); // apply.lua answered from its record
    await until("batch 2, after the settlement", () => redis.calls.length === 4);
    expect(a.seen).toEqual(["fail StoreUnavailableError", "deliver transition v9 under p1 late"]);
    expect([redis.calls[3]!.seq, redis.calls[3]!.operations]).toEqual([2, [connect(2)]]);
  });

  it("keeps a refused batch's writes for the next process id, first, and drops the republished ones", async () => {
    const redis = fakeRedis();
    const fences: string[] = [];
    const queue = new WriteQueue(redis.applier, options, (error) => fences.push(`${error.processId} ${error.reason}`));
    const republished = write({ kind: "republish", connectionId: "r1", slot: 0, userId: "ru", info: "" }, { republish: true });
    const [a, b] = [write(connect(1)), write(connect(2))];
    queue.start("p1");
    queue.push(a.pending);
    await until("batch 1", () => redis.calls.length === 1);
    queue.push(republished.pending);
    queue.push(b.pending);
    redis.calls[0]!.refuse(new FencedError("p1", FenceReason.Gone));
    await until("the fence", () => fences.length === 1);
    expect(fences).toEqual(["p1 gone"]);
    expect(republished.seen).toEqual(["drop"]);
    expect(queue.queued().map((w) => w.operation)).toEqual([connect(1), connect(2)]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(redis.calls).toHaveLength(1); // held until the recovery starts it again
    queue.start("p2");
    await until("batch 1 of p2", () => redis.calls.length === 2);
    expect(redis.calls[1]).toMatchObject({ processId: "p2", seq: 1, operations: [connect(1), connect(2)] });
    expect(a.seen).toEqual([]); // never answered wrongly: still waiting for its outcome
  });

  it("sends only the republishing writes at the front until released", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, options, () => {});
    const caller = write(connect(1));
    const republished = write({ kind: "republish", connectionId: "r1", slot: 0, userId: "ru", info: "" }, { republish: true });
    queue.push(caller.pending);
    queue.push(republished.pending, true);
    queue.start("p2", true);
    await until("the republishing batch", () => redis.calls.length === 1);
    expect(redis.calls[0]!.operations.map((o) => o.kind)).toEqual(["republish"]);
    redis.calls[0]!.answer([transition(1)]);
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(redis.calls).toHaveLength(1);
    queue.release(false);
    await until("the caller's batch", () => redis.calls.length === 2);
    expect(redis.calls[1]).toMatchObject({ seq: 2, operations: [connect(1)] });
  });

  it("answers callers that waited longer than the command timeout, and keeps their writes", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, { ...options, commandTimeoutMs: 20 }, () => {});
    const a = write(connect(1));
    queue.push(a.pending);
    await until("the caller to be answered", () => a.seen.length === 1);
    expect(a.seen).toEqual(["fail StoreUnavailableError"]);
    queue.start("p1");
    await until("the write to be sent", () => redis.calls.length === 1);
    redis.calls[0]!.answer([transition(3)]);
    await until("the late delivery", () => a.seen.length === 2);
    expect(a.seen[1]).toBe("deliver transition v3 under p1 late");
  });

  it("fails what it holds when closed", async () => {
    const redis = fakeRedis();
    const queue = new WriteQueue(redis.applier, options, () => {});
    const a = write(connect(1));
    queue.push(a.pending);
    queue.close(new Error("closed"));
    expect(a.seen).toEqual(["fail Error"]);
    expect(queue.idle).toBe(true);
  });
});
