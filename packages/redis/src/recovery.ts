import { randomUUID } from "node:crypto";
import { StoreUnavailableError, type LocalPresence, type StoreEvents, type Transition } from "@presence/core";
import createDebug from "debug";
import type { Cleaner } from "./cleaner";
import { FenceReason, knownField, membershipField, parseKnownField } from "./encoding";
import type { Ledger } from "./ledger";
import type { Lifecycle, LossAccount, RecoveryPlan } from "./lifecycle";
import { transitionOf, type Operation } from "./operations";
import type { PresenceScripts } from "./scripts";
import type { Slots } from "./slots";
import type { PendingWrite, WriteQueue } from "./write-queue";

const debug = createDebug("presence:redis:recovery");

export interface RecoveryParts {
  /** This store's id: its name on the known leaves it decides. */
  storeId: string;
  leaseTimeoutMs: number;
  scripts: PresenceScripts;
  queue: WriteQueue;
  cleaner: Cleaner;
  local: LocalPresence;
  /** The slots that name the open connections in Redis: a republished connection keeps its own. */
  slots: Slots;
  ledger: Ledger;
  lifecycle: Lifecycle;
  events: StoreEvents;
}

/**
 * Moves a store to a new process id after a fence (or at its start), step
 * by step, each step recorded in the plan so that an attempt that fails
 * (a lost reply, Redis away) is carried on by the next one: settles the
 * batch in doubt under the old id; registers a new id; republishes every
 * open connection and room membership under it ahead of anything queued;
 * removes what the old ids left in Redis. Counting the new before removing
 * the old means users who stay online see no leave and no join.
 *
 * When Redis lost data (the old record is gone or behind), what was
 * announced before is what the processes had counted: each writes its
 * account into the known hash, republishes, and sends nothing else for a
 * lease, by which time every live process has done the same; then a join it
 * made is announced unless someone counted the user before, and a counted
 * user nobody brought back is announced leaving, by one process.
 */
export class Recovery {
  readonly #parts: RecoveryParts;

  constructor(parts: RecoveryParts) {
    this.#parts = parts;
  }

  /** One attempt: resolves true once every step is done, false when fenced again meanwhile; throws when Redis did not answer. */
  async run(plan: RecoveryPlan): Promise<boolean> {
    const { queue, scripts, cleaner, ledger, lifecycle, leaseTimeoutMs } = this.#parts;
    queue.hold();
    await queue.drained();
    // the batch in doubt is settled under its own id first: applied, or refused (and sent again under the next)
    while (queue.inDoubt()) {
      if (lifecycle.closing) return false;
      if (!(await queue.settle())) throw new StoreUnavailableError("Redis did not answer: the batch in doubt is not settled yet");
    }

    if (plan.processId === undefined) {
      const previous = lifecycle.processId;
      if (!plan.loss && previous !== undefined && (await this.#lostData(plan, previous))) {
        debug("Redis lost data of process %s", previous);
        plan.loss = { before: new Set(ledger.account()), joined: new Map(), decided: new Set(), foundAt: Date.now() };
        cleaner.resetOutbox();
      }
      const processId = randomUUID();
      // if the reply is lost, the id may be registered: it is removed like any old id
      lifecycle.retired.set(processId, cleaner.announcedThrough);
      const sentAt = Date.now();
      await scripts.register(processId);
      lifecycle.adopt(processId, sentAt, leaseTimeoutMs, cleaner.announcedThrough);
      ledger.reset(processId);
      queue.start(processId, true);
    }
    if (plan.loss) await scripts.markKnown([...plan.loss.before], 10 * leaseTimeoutMs);
    if (!plan.republished) {
      if (!(await this.#republish(plan))) return false;
      plan.republished = true;
    }
    // the callers' writes go on behind the republished ones; after a data loss they wait for the accounts
    if (!plan.loss) queue.release(false);
    await this.cleanRetired(plan.loss !== undefined);
    if (plan.loss) {
      // every live process renews within a heartbeat: after a lease, all have republished theirs
      const wait = plan.loss.foundAt + leaseTimeoutMs - Date.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      if (lifecycle.closing) return false;
      await this.#settleLoss(plan.loss);
    }
    if (lifecycle.plan !== plan || plan.processId === undefined) return false; // fenced again meanwhile
    queue.release(false);
    return true;
  }

  /** Whether Redis lost what it had of `processId`: its record is gone, or behind what the process saw applied. */
  async #lostData(plan: RecoveryPlan, processId: string): Promise<boolean> {
    if (plan.fence?.processId === processId && plan.fence.reason === FenceReason.Behind) return true;
    return !(await this.#parts.scripts.hasRecord(processId));
  }

  /**
   * The transitions a data loss hid: a join this process republished is
   * announced unless someone counted the user before; a user (or room
   * member) it had counted and nobody brought back is announced leaving by
   * the one process whose known-leave.lua decides it. Each is marked
   * decided in the account, so that a retry repeats none.
   */
  async #settleLoss(loss: LossAccount): Promise<void> {
    const { scripts, local, events, lifecycle } = this.#parts;
    for (const [field, transition] of loss.joined) {
      const known = parseKnownField(field);
      if (!loss.before.has(field) && !(await scripts.isKnown(known)) && (await scripts.isPresent(known))) events.announce(transition);
      loss.joined.delete(field);
    }
    for (const field of loss.before) {
      if (lifecycle.closing) return;
      if (loss.decided.has(field)) continue;
      const known = parseKnownField(field);
      const held = known.room === undefined ? local.isOnline(known.userId) : local.isInRoom(known.userId, known.room);
      const version = held ? undefined : await scripts.knownLeave(known, this.#parts.storeId);
      loss.decided.add(field);
      if (version === undefined) continue;
      events.announce(known.room === undefined ? { type: "disconnected", userId: known.userId, version } : { type: "left", room: known.room, userId: known.userId, version });
    }
  }

  /**
   * Queues the republishing operations ahead of everything and waits for
   * them. After a data loss the joins they make are kept in the account
   * instead of announced. Resolves false when they were refused (fenced).
   */
  async #republish(plan: RecoveryPlan): Promise<boolean> {
    const { queue, local, slots, ledger, events } = this.#parts;
    // what is still queued answers for itself; a repeated connect (new info) does not bring the connection's rooms
    const queued = new Set<string>();
    for (const { operation } of queue.queued()) {
      if (operation.kind === "connect" && !operation.repeat) queued.add(operation.connectionId);
      else if (operation.kind === "join") queued.add(membershipField(operation.connectionId, operation.room));
    }
    const operations: Operation[] = [];
    for (const connectionId of local.connectionIds()) {
      if (queued.has(connectionId)) continue;
      const userId = local.userOf(connectionId)!;
      const info = local.info(userId);
      const slot = slots.take(connectionId);
      operations.push({ kind: "republish", connectionId, slot, userId, info: info === undefined ? "" : JSON.stringify(info) });
      for (const room of local.roomsOf(connectionId)) {
        if (!queued.has(membershipField(connectionId, room))) operations.push({ kind: "join", connectionId, slot, userId, room });
      }
    }
    const writes: PendingWrite[] = [];
    const done = operations.map(
      (operation) =>
        new Promise<boolean>((resolve) => {
          writes.push({
            operation,
            republish: true,
            queuedAt: Date.now(),
            deliver: (outcome, processId, _late, recorded) => {
              ledger.note(processId, operation, outcome);
              if (outcome.type === "transition" && !outcome.taken) {
                const transition: Transition = transitionOf(operation, outcome.version, outcome.info);
                if (plan.loss) plan.loss.joined.set(knownField(transition.type === "joined" ? { userId: transition.userId, room: transition.room } : { userId: transition.userId }), transition);
                else events.announce(transition);
              }
              void recorded.then(() => resolve(true));
            },
            fail: () => {}, // in doubt: delivered once settled
            drop: () => resolve(false),
          });
        }),
    );
    for (let i = writes.length - 1; i >= 0; i--) queue.push(writes[i]!, true);
    queue.release(true); // only the republishing writes, until the plan says otherwise
    return (await Promise.all(done)).every(Boolean);
  }

  /**
   * Removes what this store's old process ids left (writing no leaves with
   * `quiet`: after a data loss the known accounts settle them).
   */
  async cleanRetired(quiet: boolean): Promise<void> {
    const { cleaner, scripts, lifecycle } = this.#parts;
    for (const [processId, announced] of [...lifecycle.retired]) {
      if (processId === lifecycle.processId) continue;
      const status = await cleaner.clean(processId, quiet ? "retire-quietly" : "retire", announced);
      if (status === "busy") continue; // another cleaner has it
      lifecycle.retired.delete(processId);
      await scripts.forget([processId]);
    }
  }
}
