import { randomUUID } from "node:crypto";
import type { StoreEvents, Transition } from "@presence/core";
import createDebug from "debug";
import type { Cleaner } from "./cleaner";
import { pack, unpackPair } from "./encoding";
import type { FencedError } from "./errors";
import type { PresenceKeys } from "./keys";
import type { Counted, LocalTruth } from "./local-truth";
import { transitionOf, type Op, type PresenceScripts } from "./scripts";
import type { Operation, WriteQueue } from "./write-queue";

const debug = createDebug("presence:redis:recovery");

export interface RecoveryParts {
  storeId: string;
  leaseTimeoutMs: number;
  keys: PresenceKeys;
  scripts: PresenceScripts;
  queue: WriteQueue;
  cleaner: Cleaner;
  truth: LocalTruth;
  events: StoreEvents;
  closed(): boolean;
}

/**
 * Moves a store to a new process id after a fence (or at its start): settles
 * the batch in doubt under the old id, registers the new one, republishes
 * every open connection and room membership under it ahead of anything
 * queued, then removes what the old ids left in Redis. Counting the new
 * before removing the old means users who stay online see no leave and no
 * join. When Redis lost data (the old record is gone or behind), what was
 * announced through this process is what it had counted: joins of those
 * users are not announced again, and their leaves are announced once the
 * others had a lease to republish theirs.
 */
export class Recovery {
  readonly #parts: RecoveryParts;
  /** Earlier process ids of this store whose data may still be in Redis. */
  readonly retired = new Set<string>();

  constructor(parts: RecoveryParts) {
    this.#parts = parts;
  }

  /** Resolves false when fenced again meanwhile: the next recovery starts over. */
  async run(fence: FencedError | undefined): Promise<boolean> {
    const { scripts, queue, cleaner, truth, leaseTimeoutMs, storeId } = this.#parts;
    queue.hold();
    await queue.idle();
    // the batch in doubt is settled under its own id first: applied, sent again, or fenced
    while (queue.inDoubt() && !this.#parts.closed()) {
      if (!(await queue.settle())) throw new Error("the batch in doubt could not be settled yet");
    }
    const previous = queue.processId;
    const dataLost = previous !== undefined && fence !== undefined && (fence.reason === "behind" || (await scripts.record(previous)) === undefined);
    const counted = truth.takeCounted();
    const before = dataLost ? counted : undefined;

    const processId = randomUUID();
    await scripts.register(processId, leaseTimeoutMs, storeId, cleaner.announcedThrough);
    if (previous !== undefined) this.retired.add(previous);
    if (dataLost) {
      debug("Redis lost data of process %s", previous);
      cleaner.resetOutbox();
    }
    debug("registered as process %s (was %s)", processId, previous ?? "none");

    if (!(await this.#republish(processId, before))) return false;

    const announcedLeaves = new Set<string>();
    await this.cleanRetired(
      before &&
        ((t) => {
          const key = t.type === "left" ? pack(t.room, t.userId) : t.userId;
          const known = t.type === "left" ? before.memberships.has(key) : before.users.has(key);
          if (known) announcedLeaves.add(key);
          return known;
        }),
    );
    if (before) this.#settleLossLater(before, announcedLeaves);
    return true;
  }

  /** Queues the republishing operations ahead of everything, starts the queue, and waits for them. */
  async #republish(processId: string, before: Counted | undefined): Promise<boolean> {
    const { queue, truth, events } = this.#parts;
    const queued = new Set<string>();
    for (const { op } of queue.queued()) {
      if (op.op === "c") queued.add(op.connectionId);
      else if (op.op === "j") queued.add(pack(op.connectionId, op.room));
    }
    const known = (op: Op) => (op.op === "j" ? before?.memberships.has(pack(op.room, op.userId)) : before?.users.has(op.userId)) ?? false;
    const operations: Operation[] = [];
    const done = truth.republishing(queued).map(
      (op) =>
        new Promise<boolean>((resolve) => {
          operations.push({
            op,
            republish: true,
            queuedAt: Date.now(),
            deliver: (result) => {
              truth.noteCounted(op, result);
              if (result === 1 && !known(op)) events.announce(transitionOf(op));
              resolve(true);
            },
            fail: () => {}, // in doubt: delivered once settled
            drop: () => resolve(false),
          });
        }),
    );
    for (let i = operations.length - 1; i >= 0; i--) queue.push(operations[i]!, true);
    queue.start(processId);
    return (await Promise.all(done)).every(Boolean);
  }

  /** Removes what this store's old process ids left (their leaves filtered by `filter`). */
  async cleanRetired(filter?: (t: Transition) => boolean): Promise<void> {
    const { cleaner, scripts } = this.#parts;
    for (const processId of [...this.retired]) {
      const status = await cleaner.clean(processId, "force", filter);
      if (status === "busy") continue;
      this.retired.delete(processId);
      await scripts.forget([processId]);
    }
  }

  /**
   * After a data loss, the users (and room members) this process had counted
   * and no longer holds are announced leaving once every other process had
   * a lease to republish its own: if nobody brought them back, they left.
   */
  #settleLossLater(before: Counted, announced: ReadonlySet<string>): void {
    const { scripts, keys, truth, events, leaseTimeoutMs } = this.#parts;
    const absent = async (key: string, userId: string) =>
      (await scripts.call("HEXISTS", () => scripts.redis.hexists(key, userId))) === 0;
    setTimeout(() => {
      void (async () => {
        for (const userId of before.users) {
          if (this.#parts.closed() || announced.has(userId) || truth.connections.isOnline(userId)) continue;
          if (await absent(keys.users, userId)) events.announce({ type: "disconnected", userId });
        }
        for (const membership of before.memberships) {
          const [room, userId] = unpackPair(membership);
          if (this.#parts.closed() || announced.has(membership) || truth.inRoom(userId, room)) continue;
          if (await absent(keys.room(room), userId)) events.announce({ type: "left", room, userId });
        }
      })().catch((error: unknown) => events.error(error as Error));
    }, leaseTimeoutMs).unref();
  }
}
