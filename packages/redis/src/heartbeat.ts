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
  /** The cleanup of the dead processes in progress, if any. */
  #sweeping: Promise<void> | undefined;

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
      this.#failed(error);
    } finally {
      this.#ticking = false;
    }
    if (lifecycle.phase === "registering" || lifecycle.phase === "fenced") return lifecycle.recover();
  }

  /** A fence of this store's own process id starts a recovery (at the next tick); anything else is reported. */
  #failed(error: unknown): void {
    const { lifecycle } = this.#parts;
    if (error instanceof FencedError && error.processId === lifecycle.processId) {
      debug("heartbeat: %s; recovering", error.message);
      lifecycle.fence(error);
    } else {
      this.#parts.error(error as Error);
    }
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
    if (!clean || lifecycle.phase !== "live" || dead.length === 0 || this.#sweeping) return;
    // in the background, so that the lease is renewed while a big cleanup runs (one sweep at a time)
    this.#sweeping = this.#sweep(dead)
      .catch((error: unknown) => this.#failed(error))
      .finally(() => (this.#sweeping = undefined));
  }

  /** Cleans the dead processes one after the other, chunk by chunk, until done or until the heartbeat stops. */
  async #sweep(dead: readonly string[]): Promise<void> {
    const { lifecycle, cleaner } = this.#parts;
    const beating = () => this.#timer !== undefined && lifecycle.phase === "live";
    for (const id of dead) {
      if (!beating()) return;
      if (id === lifecycle.processId) continue;
      const retired = lifecycle.retired.get(id);
      try {
        const status = await cleaner.clean(id, retired === undefined ? "expired" : "retire", retired, beating);
        if (retired !== undefined && (status === "done" || status === "gone")) lifecycle.retired.delete(id);
      } catch (error) {
        // one process that cannot be cleaned (Redis away, another data layout) keeps none of the others waiting
        this.#failed(error);
      }
    }
  }
}
