import createDebug from "debug";
import type { Cleaner } from "./cleaner";
import { FencedError } from "./errors";
import type { Lifecycle } from "./lifecycle";
import type { PresenceScripts } from "./scripts";
import type { WriteQueue } from "./write-queue";

const debug = createDebug("presence:redis:heartbeat");

export interface HeartbeatParts {
  heartbeatMs: number;
  leaseTimeoutMs: number;
  scripts: PresenceScripts;
  queue: WriteQueue;
  cleaner: Cleaner;
  lifecycle: Lifecycle;
  error(error: Error): void;
}

/**
 * The heartbeat, every `heartbeatMs`: it renews the lease (which checks
 * Redis did not go back in time: its record of the process must not be
 * behind the last batch seen applied) and announces what the outbox still
 * holds; while live, it first settles a batch still in doubt, then cleans
 * the dead processes Redis lists; while a registration or a recovery is
 * owed, it runs one (see lifecycle.ts).
 */
export class Heartbeat {
  readonly #parts: HeartbeatParts;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;

  constructor(parts: HeartbeatParts) {
    this.#parts = parts;
  }

  start(): void {
    this.#timer = setInterval(() => void this.tick(), this.#parts.heartbeatMs).unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async tick(): Promise<void> {
    const { lifecycle } = this.#parts;
    if (this.#ticking || this.#timer === undefined) return;
    this.#ticking = true;
    try {
      await this.#beat();
    } catch (error) {
      if (error instanceof FencedError && error.processId === lifecycle.processId) {
        debug("heartbeat: %s; recovering", error.message);
        lifecycle.fence(error);
      } else {
        this.#parts.error(error as Error);
      }
    } finally {
      this.#ticking = false;
    }
    if (lifecycle.phase === "registering" || lifecycle.phase === "fenced") return lifecycle.recover();
  }

  /**
   * Renews the lease of the process id the store writes under: while live,
   * and while a recovery that registered it is still running (a recovery
   * after a data loss takes a lease). Only a live store cleans others.
   */
  /** One renewal now, cleaning nothing (before a goodbye: the outbox is drained and the lease is fresh). */
  async renew(): Promise<void> {
    await this.#beat(false);
  }

  async #beat(clean = true): Promise<void> {
    const { lifecycle, queue, scripts, cleaner, leaseTimeoutMs } = this.#parts;
    const processId = lifecycle.processId;
    const live = lifecycle.phase === "live";
    if (processId === undefined || !(live || lifecycle.phase === "closing" || lifecycle.plan?.processId === processId)) return;
    if (live && queue.inDoubt()) await queue.settle();
    const sentAt = Date.now();
    const { dead, outbox } = await scripts.renew(processId, queue.acked, cleaner.announcedThrough);
    lifecycle.renewed(processId, sentAt, leaseTimeoutMs);
    cleaner.deliver(outbox);
    if (!clean || lifecycle.phase !== "live") return;
    for (const id of dead) {
      if (this.#timer === undefined || id === lifecycle.processId) continue;
      const retired = lifecycle.retired.get(id);
      const status = await cleaner.clean(id, retired === undefined ? "expired" : "retire", retired);
      if (retired !== undefined && status !== "busy" && status !== "alive") lifecycle.retired.delete(id);
    }
  }
}
