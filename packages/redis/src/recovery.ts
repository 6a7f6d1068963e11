import { randomUUID } from "node:crypto";
import type { StoreEvents, Transition } from "@presence/core";
import createDebug from "debug";
import type { Cleaner } from "./cleaner";
import { pack, unpackPair } from "./encoding";
import type { FencedError } from "./errors";
import type { PresenceKeys } from "./keys";
import type { LocalTruth } from "./local-truth";
import { transitionOf, type PresenceScripts } from "./scripts";
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
 * announced before is what the processes had counted: each writes its
 * account into the known hash, republishes, and sends nothing else for a
 * lease, by which time every live process has done the same; then a join it
 * made is announced unless someone counted the user before, and a counted
 * user nobody brought back is announced leaving, by one process.
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
    const started = Date.now();
    queue.hold();
    await queue.idle();
    // the batch in doubt is settled under its own id first: applied, sent again, or fenced
    while (queue.inDoubt() && !this.#parts.closed()) {
      if (!(await queue.settle())) throw new Error("the batch in doubt could not be settled yet");
    }
    const previous = queue.processId;
    const dataLost = previous !== undefined && fence !== undefined && (fence.reason === "behind" || (await scripts.record(previous)) === undefined);
    const counted = truth.takeCounted();

    const processId = randomUUID();
    await scripts.register(processId, leaseTimeoutMs, storeId, cleaner.announcedThrough);
    if (previous !== undefined) this.retired.add(previous);
    debug("registered as process %s (was %s)", processId, previous ?? "none");
    if (!dataLost) {
      if (!(await this.#republish(processId, undefined))) return false;
      await this.cleanRetired();
      return true;
    }

    // Redis lost data: what was announced before is what the processes had counted
    debug("Redis lost data of process %s", previous);
    cleaner.resetOutbox();
    const before = [...counted.users, ...[...counted.memberships].map((m) => `r:${m}`)];
    await scripts.markKnown(before, 10 * leaseTimeoutMs);
    const joined: string[] = [];
    if (!(await this.#republish(processId, joined))) return false;
    await this.cleanRetired(() => false); // what it leaves offline is settled below, with the others' accounts
    // every live process renews within a heartbeat: after a lease, all have republished theirs
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, started + leaseTimeoutMs - Date.now())));
    await this.#settleLoss(new Set(before), joined);
    queue.resume();
    return true;
  }

  /**
   * The transitions a data loss hid: a join this process republished is
   * announced unless someone counted the user before; a user (or room
   * member) it had counted and nobody brought back is announced leaving by
   * the one process that takes it out of the known ones.
   */
  async #settleLoss(before: ReadonlySet<string>, joined: readonly string[]): Promise<void> {
    const { scripts, keys, truth, events } = this.#parts;
    const present = async (field: string) => {
      const [key, userId] = field.startsWith("r:") ? (([room, user]) => [keys.room(room), user] as const)(unpackPair(field.slice(2))) : ([keys.users, field] as const);
      return (await scripts.command<number>("HEXISTS", ["HEXISTS", key, userId])) === 1;
    };
    const transition = (field: string, join: boolean): Transition => {
      if (!field.startsWith("r:")) return { type: join ? "connected" : "disconnected", userId: field };
      const [room, userId] = unpackPair(field.slice(2));
      return { type: join ? "joined" : "left", room, userId };
    };
    for (const field of joined) {
      if (before.has(field) || (await scripts.isKnown(field)) || !(await present(field))) continue;
      events.announce(transition(field, true));
    }
    for (const field of before) {
      if (this.#parts.closed()) return;
      const held = field.startsWith("r:") ? (([room, userId]) => truth.inRoom(userId, room))(unpackPair(field.slice(2))) : truth.connections.isOnline(field);
      if (held || (await present(field))) continue;
      if (await scripts.claimKnown(field)) events.announce(transition(field, false));
    }
  }

  /**
   * Queues the republishing operations ahead of everything, starts the queue,
   * and waits for them. After a data loss (`joined` given) only they are
   * sent, and the joins they make are collected instead of announced.
   */
  async #republish(processId: string, joined: string[] | undefined): Promise<boolean> {
    const { queue, truth, events } = this.#parts;
    const queued = new Set<string>();
    for (const { op } of queue.queued()) {
      if (op.op === "c") queued.add(op.connectionId);
      else if (op.op === "j") queued.add(pack(op.connectionId, op.room));
    }
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
              if (result === 1) {
                if (joined) joined.push(op.op === "j" ? `r:${pack(op.room, op.userId)}` : op.userId);
                else events.announce(transitionOf(op));
              }
              resolve(true);
            },
            fail: () => {}, // in doubt: delivered once settled
            drop: () => resolve(false),
          });
        }),
    );
    for (let i = operations.length - 1; i >= 0; i--) queue.push(operations[i]!, true);
    queue.start(processId, joined !== undefined);
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
}
