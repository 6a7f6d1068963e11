import type { Transition } from "@presence/core";
import createDebug from "debug";
import type { OutboxEntry } from "./encoding";
import { roomOfMembership } from "./encoding";
import type { ChunkStatus, ClaimStatus, PresenceScripts } from "./scripts";

const debug = createDebug("presence:redis:cleaner");

export interface CleanerOptions {
  /** This store's id: its outbox, and its name on the claims it holds. */
  storeId: string;
  leaseTimeoutMs: number;
  cleanupChunkSize: number;
}

/**
 * Removes dead processes: claims one, takes its memberships out of their
 * rooms, then removes its connections, chunk by chunk. Every leave a chunk
 * finds is written to this store's outbox in Redis by the chunk itself and
 * announced from there, so a chunk whose reply is lost loses nothing: the
 * next call returns it again, and an entry is dropped only once the call
 * after its announcement says so. One cleanup at a time per store.
 */
export class Cleaner {
  readonly #scripts: PresenceScripts;
  readonly #options: CleanerOptions;
  readonly #announce: (transition: Transition) => void;
  /** The last outbox entry announced: entries up to it are dropped by the next call. */
  #through = 0;
  #work: Promise<unknown> = Promise.resolve();

  constructor(scripts: PresenceScripts, options: CleanerOptions, announce: (transition: Transition) => void) {
    this.#scripts = scripts;
    this.#options = options;
    this.#announce = announce;
  }

  /** The last outbox entry this store announced (the heartbeat drops the entries up to it). */
  get announcedThrough(): number {
    return this.#through;
  }

  /** After Redis lost data, entry ids start again from 1. */
  resetOutbox(): void {
    this.#through = 0;
  }

  /**
   * Cleans one process (`expired`: only if its lease ran out; `force`: this
   * store's own old ids). `filter` decides which of the leaves to announce
   * (default: all). Resolves with the last status; one cleanup at a time.
   */
  clean(processId: string, mode: "expired" | "force", filter?: (transition: Transition) => boolean): Promise<ClaimStatus | ChunkStatus> {
    const run = this.#work.then(() => this.#clean(processId, mode, filter));
    this.#work = run.catch(() => {});
    return run;
  }

  /** Announces the outbox entries not announced yet (from any reply that carries the outbox). */
  deliver(outbox: readonly OutboxEntry[], filter?: (transition: Transition) => boolean): void {
    for (const entry of outbox) {
      if (entry.id <= this.#through) continue;
      this.#through = entry.id;
      const transition: Transition =
        entry.room === undefined ? { type: "disconnected", userId: entry.userId } : { type: "left", room: entry.room, userId: entry.userId };
      if (!filter || filter(transition)) this.#announce(transition);
    }
  }

  async #clean(processId: string, mode: "expired" | "force", filter?: (transition: Transition) => boolean): Promise<ClaimStatus | ChunkStatus> {
    const { storeId, leaseTimeoutMs, cleanupChunkSize } = this.#options;
    const claim = await this.#scripts.cleanup<ClaimStatus>(processId, storeId, leaseTimeoutMs, 0, mode, this.#through);
    if (claim.status !== "claimed") return claim.status;

    // the cursor is a hint only: the memberships are done once none is left
    let cursor = "0";
    for (;;) {
      const [next, picked] = await this.#scripts.scanMemberships(processId, cursor, cleanupChunkSize);
      cursor = next;
      if (picked.length > 0) {
        const fields = picked.map((field) => ({ field, room: roomOfMembership(field).room }));
        const reply = await this.#scripts.cleanupRooms(processId, storeId, fields, this.#through);
        if (reply.status === "alive") return "alive";
        this.deliver(reply.outbox, filter);
      }
      if (cursor === "0" && !(await this.#scripts.hasMemberships(processId))) break;
    }

    for (;;) {
      const reply = await this.#scripts.cleanup<ChunkStatus>(processId, storeId, leaseTimeoutMs, cleanupChunkSize, "expired", this.#through);
      this.deliver(reply.outbox, filter);
      if (reply.status !== "more") {
        if (reply.status === "done") debug("cleaned up process %s", processId);
        return reply.status;
      }
    }
  }
}
