import type { Transition } from "@presence/core";
import createDebug from "debug";
import { roomOfMembership, type OutboxEntry } from "./encoding";
import type { ChunkStatus, ClaimStatus, CleanupMode, PresenceScripts } from "./scripts";

const debug = createDebug("presence:redis:cleaner");

export interface CleanerParts {
  scripts: PresenceScripts;
  cleanupChunkSize: number;
  /** The process id this store cleans as (its outbox), or undefined before it registered. */
  cleanerId(): string | undefined;
  /** Whether this store's lease surely holds now: only then may it announce from its outbox (see lifecycle.ts). */
  leaseHolds(): boolean;
  announce(transition: Transition): void;
}

/**
 * Removes dead processes: claims one (which hands the cleaner the dead
 * process's own outbox, and the transitions of its last batch when it died
 * before announcing them), takes its memberships out of their rooms, then
 * removes its connections, chunk by chunk. Every leave a chunk finds is
 * written, with its version, to the cleaner's outbox in Redis by the chunk
 * itself and announced from there, so a chunk whose reply is lost loses
 * nothing: the next call returns it again, and an entry is dropped only
 * once the call after its announcement says so. A cleaner that dies with
 * leaves in its outbox is claimed in turn, and its cleaner announces them.
 * One cleanup at a time per store.
 */
export class Cleaner {
  readonly #parts: CleanerParts;
  /** The last outbox entry announced: entries up to it are dropped by the next call. */
  #through = 0;
  #work: Promise<unknown> = Promise.resolve();

  constructor(parts: CleanerParts) {
    this.#parts = parts;
  }

  /** The last outbox entry this store announced (every call drops the entries up to it). */
  get announcedThrough(): number {
    return this.#through;
  }

  /** After Redis lost data, entry ids start again from 1. */
  resetOutbox(): void {
    this.#through = 0;
  }

  /**
   * Cleans one process (see `CleanupMode`); `retiredThrough`, for this
   * store's own old ids, is the last entry of that id's outbox it had
   * announced. Resolves with the last status; one cleanup at a time.
   * Between chunks it goes on while `proceed()` says so, else it resolves
   * with "more" (the claim then lapses, and any cleaner resumes it).
   * Rejects with `FencedError` when this store's own lease does not hold.
   */
  clean(processId: string, mode: CleanupMode, retiredThrough = 0, proceed: () => boolean = () => true): Promise<ClaimStatus | ChunkStatus> {
    const run = this.#work.then(() => this.#clean(processId, mode, retiredThrough, proceed));
    this.#work = run.catch(() => {});
    return run;
  }

  /**
   * Announces the outbox entries not announced yet, from any reply that
   * carries the outbox, while the lease holds. (When it may not hold, a
   * cleaner of this process may be announcing them: they wait for the next
   * heartbeat's reply, or for that cleaner.)
   */
  deliver(outbox: readonly OutboxEntry[]): void {
    if (outbox.length === 0 || !this.#parts.leaseHolds()) return;
    for (const entry of outbox) {
      if (entry.id <= this.#through) continue;
      this.#through = entry.id;
      for (const transition of entry.transitions) this.#parts.announce(transition);
    }
  }

  async #clean(processId: string, mode: CleanupMode, retiredThrough: number, proceed: () => boolean): Promise<ClaimStatus | ChunkStatus> {
    const { scripts, cleanupChunkSize } = this.#parts;
    const cleanerId = this.#parts.cleanerId();
    if (cleanerId === undefined) return "busy";
    const claim = await scripts.cleanup<ClaimStatus>(processId, cleanerId, 0, mode, this.#through, retiredThrough);
    this.deliver(claim.outbox);
    if (claim.status !== "claimed") return claim.status;

    // the cursor is a hint only: the memberships are done once none is left
    let cursor = "0";
    for (;;) {
      if (!proceed()) return "more";
      const [next, picked] = await scripts.scanMemberships(processId, cursor, cleanupChunkSize);
      cursor = next;
      if (picked.length > 0) {
        const fields = picked.map((field) => ({ field, room: roomOfMembership(field) }));
        const reply = await scripts.cleanupRooms(processId, cleanerId, fields, this.#through, mode === "retire-quietly");
        this.deliver(reply.outbox);
        if (reply.status === "alive") return "alive";
      }
      if (cursor === "0" && !(await scripts.hasMemberships(processId))) break;
    }

    for (;;) {
      if (!proceed()) return "more";
      const reply = await scripts.cleanup<ChunkStatus>(processId, cleanerId, cleanupChunkSize, mode, this.#through, retiredThrough);
      this.deliver(reply.outbox);
      if (reply.status !== "more") {
        if (reply.status === "done") debug("cleaned up process %s", processId);
        return reply.status;
      }
    }
  }
}
