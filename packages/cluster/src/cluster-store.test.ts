import cluster from "node:cluster";
import {
  ConnectionConflictError,
  InvalidOptionError,
  InvalidRoomError,
  InvalidUserIdError,
  InvalidUserInfoError,
  StoreClosedError,
  StoreUnavailableError,
} from "@presence/core";
import { describe, expect, it } from "vitest";
import { createMemoryChannel, type WorkerChannel } from "./channel";
import { ClusterStore, createClusterStore, type ClusterStoreOptions } from "./cluster-store";
import { ClusterSetupError } from "./errors";
import { PresencePrimary, setupPrimary, type PrimaryOptions } from "./primary";

function deployment(options: PrimaryOptions = {}) {
  const channel = createMemoryChannel();
  const primary = new PresencePrimary(channel.primary, options);
  return { channel, primary, store: (timeoutMs?: number) => new ClusterStore({ channel: channel.worker(), timeoutMs }) };
}

/** A channel to a primary that never answers. */
const silentChannel = (): WorkerChannel => ({ send: () => true, onMessage: () => () => {}, onGone: () => () => {} });

describe("ClusterStore", () => {
  it("sends the calls of one event-loop turn in one message, answered by one message", async () => {
    const { primary, store } = deployment();
    const worker = store();
    await worker.usersCount(); // the OPEN and this query: one message
    const before = { ...worker.stats };
    const calls = Array.from({ length: 500 }, (_, i) => worker.connect(`c${i}`, `user${i % 50}`));
    expect((await Promise.all(calls)).filter(Boolean)).toHaveLength(50);
    // the calls, then a word before the 50 transitions are announced and one after
    expect(worker.stats.messagesSent - before.messagesSent).toBe(3);
    expect(worker.stats.messagesReceived - before.messagesReceived).toBe(1);
    expect(worker.stats.calls - before.calls).toBe(500);
    expect(primary.stats.calls).toBe(502);
    expect(primary.presence.connectionsCount).toBe(500);
    await worker.close();
  });

  it("rejects with StoreUnavailableError when the primary does not answer in time", async () => {
    const worker = new ClusterStore({ channel: silentChannel(), timeoutMs: 100 });
    const started = Date.now();
    const error = await worker.connect("c1", "alice").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(StoreUnavailableError);
    expect((error as StoreUnavailableError).retryable).toBe(true);
    expect((error as Error).message).toMatch(/did not answer within 100 ms/);
    expect(Date.now() - started).toBeGreaterThanOrEqual(90);
    await expect(worker.close()).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(worker.usersCount()).rejects.toBeInstanceOf(StoreClosedError);
  });

  it("takes an answer that arrived while its event loop was blocked past the timeout as an answer, not a timeout", async () => {
    const channel = createMemoryChannel();
    new PresencePrimary(channel.primary);
    const link = channel.worker();
    let blockNext = false;
    // the answer arrives, then the loop blocks (past the call's timeout) before the store reads it
    const blocking: WorkerChannel = {
      send: (envelope) => link.send(envelope),
      onGone: (listener) => link.onGone(listener),
      onMessage: (listener) =>
        link.onMessage((envelope) => {
          if (!blockNext) return listener(envelope);
          blockNext = false;
          const until = performance.now() + 150;
          while (performance.now() < until);
          setImmediate(() => listener(envelope));
        }),
    };
    const worker = new ClusterStore({ channel: blocking, timeoutMs: 30 });
    const seen: string[] = [];
    worker.onTransition((t) => seen.push(`${t.type}:${t.userId}`));
    await worker.usersCount();
    blockNext = true;
    expect(await worker.connect("c1", "alice")).toBe(true);
    expect(seen).toEqual(["connected:alice"]);
    await worker.close();
  });

  it("re-creates the primary's typed errors in the worker", async () => {
    // the primary is stricter than the worker: its refusals must come back as the same classes
    const { store } = deployment({ maxUserIdBytes: 5, maxRoomBytes: 5, maxUserInfoBytes: 20 });
    const worker = store();
    const tooLong = await worker.connect("c1", "alexandra").catch((e: unknown) => e);
    expect(tooLong).toBeInstanceOf(InvalidUserIdError);
    expect((tooLong as InvalidUserIdError).reason).toBe("too-long");
    await expect(worker.connect("c1", "bob", { name: "x".repeat(30) })).rejects.toBeInstanceOf(InvalidUserInfoError);
    expect(await worker.connect("c1", "bob")).toBe(true);
    await expect(worker.join("c1", "kitchen")).rejects.toBeInstanceOf(InvalidRoomError);
    const conflict = await worker.connect("c1", "eve").catch((e: unknown) => e);
    expect(conflict).toBeInstanceOf(ConnectionConflictError);
    expect(conflict).toMatchObject({ connectionId: "c1", userId: "eve", existingUserId: "bob", code: "CONNECTION_CONFLICT" });
    await worker.close();
  });

  it("checks input in the worker, without a round trip", async () => {
    const worker = new ClusterStore({ channel: silentChannel(), timeoutMs: 60_000 });
    await expect(worker.connect("c1", "")).rejects.toBeInstanceOf(InvalidUserIdError);
    await expect(worker.join("c1", "")).rejects.toBeInstanceOf(InvalidRoomError);
    await expect(worker.updateInfo("alice", [] as never)).rejects.toBeInstanceOf(InvalidUserInfoError);
    expect(worker.stats.calls).toBe(0);
  });

  it("validates its options, throwing InvalidOptionError that names the one that is wrong", () => {
    const channel = silentChannel();
    const refused = (options: unknown, option: string) => {
      const error = (() => {
        try {
          createClusterStore(options as ClusterStoreOptions);
        } catch (e) {
          return e;
        }
      })();
      expect(error, option).toBeInstanceOf(InvalidOptionError);
      expect(error).toMatchObject({ code: "INVALID_OPTION", option });
      expect((error as Error).message).toMatch(new RegExp(`^ClusterStore: \`${option}\``));
    };
    refused({ channel, timeoutMs: 0 }, "timeoutMs");
    refused({ channel, timeoutMs: Number.NaN }, "timeoutMs");
    refused({ channel, timeoutMs: "5000" }, "timeoutMs");
    refused({ channel, timeoutMs: 2 ** 31 }, "timeoutMs");
    refused({ channel, maxUserIdBytes: -1 }, "maxUserIdBytes");
    refused({ channel, maxRoomBytes: 1.5 }, "maxRoomBytes");
    refused({ channel: {} as WorkerChannel }, "channel");
    refused({ channel, timeout: 100 }, "timeout");
    refused({ channel, leaveGraceMs: 100 }, "leaveGraceMs"); // a primary option, not a store's
    refused([], "options");
  });

  it("refuses to start outside a cluster worker, saying what to call", () => {
    expect(cluster.isWorker).toBe(false);
    const error = (() => {
      try {
        new ClusterStore();
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ClusterSetupError);
    expect(error).toMatchObject({ code: "CLUSTER_NOT_SET_UP" });
    expect((error as Error).message).toMatch(/call setupPrimary\(\) from @presence\/cluster in the primary before forking/);
  });

  it("refuses to start in the primary once setupPrimary() ran there", () => {
    const primary = setupPrimary();
    try {
      expect(setupPrimary()).toBe(primary);
      expect(() => new ClusterStore()).toThrow(/runs in the cluster workers, not in the primary/);
    } finally {
      primary.close();
      delete process.env.PRESENCE_CLUSTER_PRIMARY;
    }
  });
});
