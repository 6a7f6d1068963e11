import { StoreUnavailableError } from "@presence/core";
import createDebug from "debug";
import type { OperationResult } from "./encoding";
import { FencedError } from "./errors";
import type { Op, PresenceScripts } from "./scripts";

const debug = createDebug("presence:redis:writes");

/**
 * An operation and whoever waits for its result. `deliver` is called exactly
 * once with what Redis did, when that is known: at once from the reply, or
 * later from Redis's record of the batch when the reply was lost. `late` says
 * the caller was already answered (`fail`), so a transition must be announced.
 */
export interface Operation {
  op: Op;
  deliver(result: OperationResult, late: boolean): void;
  /** The caller gives up (timeout, in doubt): the operation itself stays, and is delivered late. */
  fail(error: Error): void;
  /** A republished operation refused (fenced): the next recovery makes it anew. */
  drop(): void;
  /** A republished connection or membership: dropped, not kept, when fenced (the next recovery republishes anew). */
  republish?: boolean;
  queuedAt: number;
  failed?: boolean;
}

interface Batch {
  processId: string;
  seq: number;
  operations: Operation[];
}

export interface WriteQueueOptions {
  leaseTimeoutMs: number;
  maxBatchSize: number;
  commandTimeoutMs: number;
}

/**
 * The write path. Operations are coalesced into batches, and one batch per
 * process is in flight at a time, numbered 1, 2, ... under the process id.
 * apply.lua records the number and the results of the last batch in the
 * process's record, so a batch whose reply was lost is settled from that
 * record (one read for the whole batch) or sent again unchanged under the
 * same number, which apply.lua answers from the record if it ran meanwhile:
 * every operation is applied once and its result is known, whatever was lost.
 */
export class WriteQueue {
  readonly #scripts: PresenceScripts;
  readonly #options: WriteQueueOptions;
  readonly #fenced: (error: FencedError) => void;
  readonly #queue: Operation[] = [];
  #processId: string | undefined;
  /** The number of the last batch sent under the current process id. */
  #seq = 0;
  /** The number of the last batch known applied: what the heartbeat checks Redis has not lost. */
  #acked = 0;
  #inFlight: Promise<void> | undefined;
  /** A batch whose reply was lost, until Redis's record settles it. */
  #doubt: Batch | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  #settling = false;
  #held = true;
  #republishOnly = false;
  #closed = false;

  constructor(scripts: PresenceScripts, options: WriteQueueOptions, fenced: (error: FencedError) => void) {
    this.#scripts = scripts;
    this.#options = options;
    this.#fenced = fenced;
  }

  get processId(): string | undefined {
    return this.#processId;
  }

  get acked(): number {
    return this.#acked;
  }

  /** Whether a batch is in flight or in doubt. */
  get busy(): boolean {
    return this.#inFlight !== undefined || this.#doubt !== undefined;
  }

  /** What is queued and not sent yet. */
  queued(): readonly Operation[] {
    return this.#queue;
  }

  push(operation: Operation, front = false): void {
    if (front) this.#queue.unshift(operation);
    else this.#queue.push(operation);
    this.#scheduleFlush();
  }

  /** Stops sending (a recovery holds the queue); what is in flight finishes. */
  hold(): void {
    this.#held = true;
  }

  /**
   * Sends under a new process id, from batch 1; with `republishOnly`, only
   * the republishing operations at the front until {@link resume}.
   */
  start(processId: string, republishOnly = false): void {
    this.#processId = processId;
    this.#seq = 0;
    this.#acked = 0;
    this.#held = false;
    this.#republishOnly = republishOnly;
    this.#scheduleFlush();
  }

  /** Sends everything again after `start(processId, true)`. */
  resume(): void {
    this.#republishOnly = false;
    this.#scheduleFlush();
  }

  /** Resolves once nothing is in flight (a batch in doubt stays in doubt). */
  async idle(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  /** Whether a batch in doubt under `processId` awaits settling. */
  inDoubt(): Batch | undefined {
    return this.#doubt;
  }

  close(error: Error): void {
    this.#closed = true;
    clearTimeout(this.#settleTimer);
    clearTimeout(this.#expiryTimer);
    for (const operation of this.#queue.splice(0)) if (!operation.failed) operation.fail(error);
    for (const operation of this.#doubt?.operations.splice(0) ?? []) if (!operation.failed) operation.fail(error);
    this.#doubt = undefined;
  }

  #scheduleFlush(): void {
    if (this.#flushScheduled || this.#closed) return;
    this.#flushScheduled = true;
    setImmediate(() => {
      this.#flushScheduled = false;
      this.flush();
    });
  }

  /** Sends the next batch, unless one is in flight or in doubt, or the queue is held. */
  flush(): void {
    const processId = this.#processId;
    if (this.#closed || this.#queue.length === 0) return;
    if (this.#held || processId === undefined || this.#inFlight || this.#doubt) return this.#armExpiry();
    let size = Math.min(this.#options.maxBatchSize, this.#queue.length);
    if (this.#republishOnly) {
      size = this.#queue.findIndex((operation, i) => i >= size || !operation.republish);
      if (size === -1) size = Math.min(this.#options.maxBatchSize, this.#queue.length);
      if (size === 0) return this.#armExpiry();
    }
    const batch: Batch = { processId, seq: ++this.#seq, operations: this.#queue.splice(0, size) };
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = undefined;
      this.flush();
    });
  }

  /** Answers the callers that waited longer than the command timeout; their operations stay queued. */
  #armExpiry(): void {
    if (this.#expiryTimer || this.#closed) return;
    const oldest = this.#queue.find((operation) => !operation.failed);
    if (!oldest) return;
    const wait = Math.max(0, oldest.queuedAt + this.#options.commandTimeoutMs - Date.now());
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      const deadline = Date.now() - this.#options.commandTimeoutMs;
      for (const operation of this.#queue) {
        if (!operation.failed && operation.queuedAt <= deadline) {
          operation.failed = true;
          operation.fail(new StoreUnavailableError("Redis is unavailable: the operation waited too long (it is kept, and its outcome announced)"));
        }
      }
      this.#armExpiry();
    }, wait).unref();
  }

  async #send(batch: Batch): Promise<void> {
    let results: OperationResult[];
    try {
      results = await this.#scripts.apply(batch.processId, this.#options.leaseTimeoutMs, batch.seq, batch.operations.map((o) => o.op));
    } catch (error) {
      if (error instanceof FencedError) return this.#refused(batch, error);
      // in doubt: the batch may or may not have run. Its callers are answered now, its outcome later.
      for (const operation of batch.operations) {
        if (!operation.failed) {
          operation.failed = true;
          operation.fail(error as Error);
        }
      }
      this.#doubt = batch;
      debug("batch %d of %s in doubt: %s", batch.seq, batch.processId, (error as Error).message);
      this.#scheduleSettle(0);
      return;
    }
    this.#applied(batch, results);
  }

  #applied(batch: Batch, results: readonly OperationResult[]): void {
    this.#acked = batch.seq;
    batch.operations.forEach((operation, i) => operation.deliver(results[i] ?? 0, operation.failed === true));
  }

  /** Nothing of the batch was applied: the process must move to a new id (the store's recovery). */
  #refused(batch: Batch, error: FencedError): void {
    debug("batch %d of %s refused: %s", batch.seq, batch.processId, error.message);
    this.#held = true;
    // the callers' operations are sent again under the next process id, first; republished ones are made anew then
    this.#queue.unshift(...batch.operations);
    for (let i = this.#queue.length - 1; i >= 0; i--) if (this.#queue[i]!.republish) this.#queue.splice(i, 1)[0]!.drop();
    this.#fenced(error);
  }

  #scheduleSettle(delayMs: number): void {
    clearTimeout(this.#settleTimer);
    this.#settleTimer = setTimeout(() => void this.settle(), delayMs).unref();
  }

  /**
   * Settles the batch in doubt from Redis's record: applied (deliver the
   * recorded results), not applied (send it again, unchanged, under the same
   * number), or the record is gone or behind (Redis lost data: fenced).
   * Retries until Redis answers; resolves true once settled.
   */
  async settle(): Promise<boolean> {
    const batch = this.#doubt;
    if (!batch || this.#closed) return true;
    if (this.#settling) return false;
    this.#settling = true;
    try {
      const record = await this.#scripts.record(batch.processId);
      if (this.#doubt !== batch) return true;
      if (record === undefined || record.seq < batch.seq - 1) {
        this.#doubt = undefined;
        this.#refused(batch, new FencedError(batch.processId, record === undefined ? "gone" : "behind"));
        return true;
      }
      let results: OperationResult[] = record.results;
      if (record.seq !== batch.seq) {
        try {
          results = await this.#scripts.apply(batch.processId, this.#options.leaseTimeoutMs, batch.seq, batch.operations.map((o) => o.op));
        } catch (error) {
          if (!(error instanceof FencedError)) throw error;
          // refused now; but it may have run before the process was fenced, while its reply was lost
          const again = await this.#scripts.record(batch.processId);
          this.#doubt = undefined;
          if (again?.seq === batch.seq) {
            this.#applied(batch, again.results);
            this.#refused({ ...batch, operations: [] }, error);
          } else {
            this.#refused(batch, error);
          }
          return true;
        }
      }
      this.#doubt = undefined;
      this.#applied(batch, results);
      this.#scheduleFlush();
      return true;
    } catch (error) {
      debug("settling batch %d of %s failed, retrying: %s", batch.seq, batch.processId, (error as Error).message);
      this.#scheduleSettle(Math.min(250, this.#options.commandTimeoutMs));
      return false;
    } finally {
      this.#settling = false;
    }
  }
}
