import createDebug from "debug";
import type { Cleaner } from "./cleaner";
import { FencedError } from "./errors";
import type { PresenceScripts } from "./scripts";
import type { WriteQueue } from "./write-queue";

const debug = createDebug("presence:redis:lease");

export interface LeaseParts {
  storeId: string;
  heartbeatMs: number;
  leaseTimeoutMs: number;
  scripts: PresenceScripts;
  queue: WriteQueue;
  cleaner: Cleaner;
  /** This store's old process ids: cleaned like any dead process once their lease ran out. */
  retired: Set<string>;
  /** Called when the heartbeat finds the process fenced, or when a recovery is still owed. */
  recover(fence?: FencedError): Promise<void>;
  needsRecovery(): boolean;
  error(error: Error): void;
}

/**
 * The heartbeat: every `heartbeatMs` it settles a batch still in doubt,
 * renews the lease (which checks Redis did not go back in time: its record
 * of the process must not be behind the last batch seen applied), announces
 * what the outbox still holds, and cleans the dead processes Redis lists.
 */
export class Lease {
  readonly #parts: LeaseParts;
  #timer: NodeJS.Timeout | undefined;
  #ticking = false;

  constructor(parts: LeaseParts) {
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
    const parts = this.#parts;
    if (this.#ticking || this.#timer === undefined) return;
    if (parts.needsRecovery()) return parts.recover();
    const processId = parts.queue.processId;
    if (processId === undefined) return;
    this.#ticking = true;
    try {
      if (parts.queue.inDoubt()) await parts.queue.settle();
      const { dead, outbox } = await parts.scripts.renew(processId, parts.leaseTimeoutMs, parts.queue.acked, parts.storeId, parts.cleaner.announcedThrough);
      parts.cleaner.deliver(outbox);
      for (const id of dead) {
        if (this.#timer === undefined || id === parts.queue.processId) continue;
        const status = await parts.cleaner.clean(id, "expired");
        if (status !== "busy" && status !== "alive") parts.retired.delete(id);
      }
    } catch (error) {
      if (error instanceof FencedError && error.processId === parts.queue.processId) {
        debug("heartbeat: %s; recovering", error.message);
        this.#ticking = false;
        return parts.recover(error);
      }
      parts.error(error as Error);
    } finally {
      this.#ticking = false;
    }
  }
}
