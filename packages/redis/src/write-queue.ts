import { StoreUnavailableError } from "@presence/core";
import createDebug from "debug";
import { FencedError } from "./errors";
import type { Operation, OperationOutcome } from "./operations";

const debug = createDebug("presence:redis:writes");

/**
 * An operation and whoever waits for its outcome. `deliver` is called
 * exactly once with what Redis did, when that is known: at once from the
 * reply, or later when the batch whose reply was lost is settled. `late`
 * says the caller was already answered (`fail`). `recorded` resolves once
 * Redis knows the batch's transitions were announced (ack.lua), or could
 * not be told: answer the caller then, so that a process killed right
 * after a call resolved leaves no cleaner anything to announce again.
 */
export interface PendingWrite {
  operation: Operation;
  deliver(outcome: OperationOutcome, processId: string, late: boolean, recorded: Promise<void>): void;
  /** The caller gives up (timeout, in doubt): the operation itself stays, and is delivered late. */
  fail(error: Error): void;
  /** A republished operation refused (fenced): the next recovery makes it anew. */
  drop(): void;
  /** A republished connection or membership: dropped, not kept, when fenced (the next recovery republishes anew). */
  republish?: boolean;
  queuedAt: number;
  failed?: boolean;
}

/**
 * What the queue needs of Redis: apply.lua (`PresenceScripts.apply`), which
 * throws `FencedError` when it refuses, and ack.lua (`PresenceScripts.ack`).
 */
export interface BatchApplier {
  apply(processId: string, seq: number, operations: readonly Operation[]): Promise<OperationOutcome[]>;
  ack(processId: string, seq: number): Promise<void>;
}

interface Batch {
  processId: string;
  seq: number;
  writes: PendingWrite[];
}

export interface WriteQueueOptions {
  maxBatchSize: number;
  commandTimeoutMs: number;
  /** How long to wait before settling a batch in doubt again when Redis did not answer. */
  settleRetryMs?: number;
  /** Where Redis is (and why it is down), for the error of a caller that waited too long. */
  whereabouts?: () => string;
}

/**
 * The write path. Operations are coalesced into batches, and one batch per
 * process is in flight at a time, numbered 1, 2, ... under the process id.
 * apply.lua records the number and the results of the last batch in the
 * process's record, so a batch whose reply was lost is sent again unchanged
 * under the same number and answered from that record if it ran: every
 * operation is applied once and its outcome is known, whatever was lost.
 * Nothing is sent while the queue is held (before the store is registered,
 * and while it is fenced or recovering: see lifecycle.ts).
 */
export class WriteQueue {
  readonly #scripts: BatchApplier;
  readonly #options: WriteQueueOptions;
  readonly #fenced: (error: FencedError) => void;
  readonly #queue: PendingWrite[] = [];
  #processId: string | undefined;
  /** The number of the last batch sent under the current process id. */
  #seq = 0;
  /** The number of the last batch known applied: what the heartbeat checks Redis has not lost. */
  #acked = 0;
  #inFlight: Promise<void> | undefined;
  /** Acks in flight (ack.lua): Redis keeps a batch's transitions for a cleaner until told they were announced. */
  #acking = 0;
  /** A batch whose reply was lost, until it is settled. */
  #doubt: Batch | undefined;
  #settleTimer: NodeJS.Timeout | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  #flushScheduled = false;
  #settling = false;
  #held = true;
  #republishOnly = false;
  #closed = false;

  constructor(scripts: BatchApplier, options: WriteQueueOptions, fenced: (error: FencedError) => void) {
    this.#scripts = scripts;
    this.#options = options;
    this.#fenced = fenced;
  }

  /** The process id batches are sent under. */
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

  /** Whether nothing is queued, in flight or in doubt, and Redis knows every batch's transitions were announced. */
  get idle(): boolean {
    return !this.busy && this.#queue.length === 0 && this.#acking === 0;
  }

  /** What is queued and not sent yet. */
  queued(): readonly PendingWrite[] {
    return this.#queue;
  }

  push(write: PendingWrite, front = false): void {
    if (front) this.#queue.unshift(write);
    else this.#queue.push(write);
    this.#scheduleFlush();
  }

  /** Stops sending; what is in flight finishes. */
  hold(): void {
    this.#held = true;
  }

  /**
   * Sends under a new process id, from batch 1; with `republishOnly`, only
   * the republishing operations at the front until {@link release}.
   */
  start(processId: string, republishOnly = false): void {
    this.#processId = processId;
    this.#seq = 0;
    this.#acked = 0;
    this.release(republishOnly);
  }

  /** Sends again under the same process id: everything, or with `republishOnly` only the republishing operations at the front. */
  release(republishOnly: boolean): void {
    this.#held = false;
    this.#republishOnly = republishOnly;
    this.#scheduleFlush();
  }

  /** Resolves once nothing is in flight (a batch in doubt stays in doubt). */
  async drained(): Promise<void> {
    while (this.#inFlight) await this.#inFlight;
  }

  /** The batch whose reply was lost, until it is settled. */
  inDoubt(): Batch | undefined {
    return this.#doubt;
  }

  close(error: Error): void {
    this.#closed = true;
    clearTimeout(this.#settleTimer);
    clearTimeout(this.#expiryTimer);
    for (const write of this.#queue.splice(0)) if (!write.failed) write.fail(error);
    for (const write of this.#doubt?.writes.splice(0) ?? []) if (!write.failed) write.fail(error);
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
      const end = this.#queue.findIndex((write, i) => i >= size || !write.republish);
      if (end !== -1) size = end;
      if (size === 0) return this.#armExpiry();
    }
    const batch: Batch = { processId, seq: ++this.#seq, writes: this.#queue.splice(0, size) };
    this.#inFlight = this.#send(batch).finally(() => {
      this.#inFlight = undefined;
      this.flush();
    });
  }

  /**
   * Tells Redis a batch's transitions were announced (ack.lua), sent right
   * after they were, ahead of the next batch. If it is lost, the heartbeat
   * says it too; a process that dies before either may have the batch
   * announced again by its cleaner, with the same versions (README, failure
   * table). Resolves either way.
   */
  #ack(batch: Batch): Promise<void> {
    this.#acking++;
    return this.#scripts
      .ack(batch.processId, batch.seq)
      .catch((error: Error) => debug("ack of batch %d of %s failed (the heartbeat says it): %s", batch.seq, batch.processId, error.message))
      .finally(() => this.#acking--);
  }

  /** Answers the callers that waited longer than the command timeout; their operations stay queued. */
  #armExpiry(): void {
    if (this.#expiryTimer || this.#closed) return;
    const oldest = this.#queue.find((write) => !write.failed);
    if (!oldest) return;
    const wait = Math.max(0, oldest.queuedAt + this.#options.commandTimeoutMs - Date.now());
    this.#expiryTimer = setTimeout(() => {
      this.#expiryTimer = undefined;
      const deadline = Date.now() - this.#options.commandTimeoutMs;
      for (const write of this.#queue) {
        if (!write.failed && write.queuedAt <= deadline) {
          write.failed = true;
          const where = this.#options.whereabouts ? ` at ${this.#options.whereabouts()}` : "";
          write.fail(new StoreUnavailableError(`Redis${where} did not take the write within ${this.#options.commandTimeoutMs} ms (it is kept, and its outcome announced)`));
        }
      }
      this.#armExpiry();
    }, wait).unref();
  }

  async #send(batch: Batch): Promise<void> {
    let outcomes: OperationOutcome[];
    try {
      outcomes = await this.#scripts.apply(batch.processId, batch.seq, batch.writes.map((write) => write.operation));
    } catch (error) {
      if (error instanceof FencedError) return this.#refused(batch, error);
      // in doubt: the batch may or may not have run. Its callers are answered now, its outcome later.
      for (const write of batch.writes) {
        if (!write.failed) {
          write.failed = true;
          write.fail(error as Error);
        }
      }
      this.#doubt = batch;
      debug("batch %d of %s in doubt: %s", batch.seq, batch.processId, (error as Error).message);
      this.#scheduleSettle(0);
      return;
    }
    this.#applied(batch, outcomes);
  }

  /**
   * Delivers a batch's outcomes (announcing its transitions), and only then
   * tells Redis they were announced: a process killed between the two leaves
   * the transitions in its record for its cleaner (acking first, a kill
   * between the ack reaching Redis and the announcement lost them).
   */
  #applied(batch: Batch, outcomes: readonly OperationOutcome[]): void {
    let acked!: () => void;
    const recorded = new Promise<void>((resolve) => (acked = resolve));
    batch.writes.forEach((write, i) => write.deliver(outcomes[i] ?? { type: "unchanged" }, batch.processId, write.failed === true, recorded));
    this.#acked = batch.seq;
    const announces = outcomes.some((outcome) => outcome.type === "transition" && !outcome.taken);
    void (announces ? this.#ack(batch) : Promise.resolve()).then(acked);
  }

  /** Nothing of the batch was applied: the process must move to a new id (the store's recovery). */
  #refused(batch: Batch, error: FencedError): void {
    debug("batch %d of %s refused: %s", batch.seq, batch.processId, error.message);
    this.#held = true;
    // the callers' operations are sent again under the next process id, first; republished ones are made anew then
    this.#queue.unshift(...batch.writes);
    for (let i = this.#queue.length - 1; i >= 0; i--) if (this.#queue[i]!.republish) this.#queue.splice(i, 1)[0]!.drop();
    this.#fenced(error);
  }

  #scheduleSettle(delayMs: number): void {
    clearTimeout(this.#settleTimer);
    if (this.#closed) return;
    this.#settleTimer = setTimeout(() => void this.settle(), delayMs).unref();
  }

  /**
   * Settles the batch in doubt: sends it again, unchanged, under the same
   * number. apply.lua answers from its record if the batch ran, applies it
   * if it did not, and refuses it (fenced: applied nowhere) when the process
   * is gone or Redis lost data. Retries until Redis answers; resolves true
   * once settled.
   */
  async settle(): Promise<boolean> {
    const batch = this.#doubt;
    if (!batch || this.#closed) return true;
    if (this.#settling) return false;
    this.#settling = true;
    try {
      const outcomes = await this.#scripts.apply(batch.processId, batch.seq, batch.writes.map((write) => write.operation));
      if (this.#doubt !== batch) return true;
      this.#doubt = undefined;
      this.#applied(batch, outcomes);
      this.#scheduleFlush();
      return true;
    } catch (error) {
      if (error instanceof FencedError && this.#doubt === batch) {
        this.#doubt = undefined;
        this.#refused(batch, error);
        return true;
      }
      debug("settling batch %d of %s failed, retrying: %s", batch.seq, batch.processId, (error as Error).message);
      this.#scheduleSettle(this.#options.settleRetryMs ?? Math.min(250, this.#options.commandTimeoutMs));
      return false;
    } finally {
      this.#settling = false;
    }
  }
}
