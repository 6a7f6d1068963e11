import type { Transition } from "@presence/core";
import createDebug from "debug";
import type { FenceReason } from "./encoding";
import { FencedError } from "./errors";

const debug = createDebug("presence:redis:lifecycle");

/**
 * Where a store is in its life on Redis:
 *
 * - `registering`: taking its first process id (retried by the heartbeat until Redis answers);
 * - `live`: writing under its process id;
 * - `fenced`: Redis refused its process id; writes are held until a recovery succeeds;
 * - `recovering`: a recovery is running (see recovery.ts);
 * - `closing`: saying goodbye; `closed`: done.
 */
export type Phase = "registering" | "live" | "fenced" | "recovering" | "closing" | "closed";

export type LifecycleEvent =
  /** A recovery (or the first registration) starts. */
  | "recover"
  /** It finished every step: writes flow under the new process id. */
  | "recovered"
  /** It stopped before the end (Redis did not answer, or a new fence): the fence stays on, the plan is kept. */
  | "failed"
  /** Redis refused the process id the store writes (or registers) under. */
  | "fenced"
  | "close"
  | "closed";

/**
 * Every allowed change of phase, in one table; an event not listed leaves
 * the phase as it is. A recovery that ends after a new fence came in ends
 * in `fenced` (its success is stale), and nothing but `closed` leaves `closing`.
 */
export const PHASES: { readonly [P in Phase]: Partial<Record<LifecycleEvent, Phase>> } = {
  registering: { recover: "registering", recovered: "live", failed: "registering", fenced: "fenced", close: "closing" },
  live: { fenced: "fenced", close: "closing" },
  fenced: { recover: "recovering", close: "closing" },
  recovering: { recovered: "live", failed: "fenced", fenced: "fenced", close: "closing" },
  closing: { closed: "closed" },
  closed: {},
};

/** The phase after `event` (the same phase when the table does not list it). */
export function nextPhase(phase: Phase, event: LifecycleEvent): Phase {
  return PHASES[phase][event] ?? phase;
}

/** A fence met: which process id Redis refused, and why. */
export interface Fence {
  processId: string;
  reason: FenceReason;
}

/**
 * After Redis lost data: what was announced before the loss is what the
 * processes had counted. Kept in the plan until the recovery succeeds, so
 * that a retry finishes what a failed attempt began.
 */
export interface LossAccount {
  /** Who was announced online through this store before the loss (known fields, see encoding.ts). */
  before: ReadonlySet<string>;
  /** Joins the republish made, held back until every live process had a lease to republish: known field -> transition. */
  joined: Map<string, Transition>;
  /** Known fields already settled: announced, or found still online. */
  decided: Set<string>;
  /** When the loss was found (this process's clock): held writes wait one lease from then. */
  foundAt: number;
}

/**
 * What a recovery must do, and what it has done: nothing in it is dropped
 * before the recovery succeeds (a reply lost in the middle of a recovery
 * makes the next attempt carry on from here).
 */
export interface RecoveryPlan {
  /** The last fence met; undefined for the first registration. */
  fence: Fence | undefined;
  /** The process id this recovery registered, once it did (cleared when that id is fenced in turn). */
  processId: string | undefined;
  /** Whether the open connections are republished under `processId`. */
  republished: boolean;
  /** Set once Redis is found to have lost data; never unset before the recovery succeeds. */
  loss: LossAccount | undefined;
}

export interface LifecycleHooks {
  /** Runs one attempt of a plan: resolves true once every step is done. */
  run(plan: RecoveryPlan): Promise<boolean>;
  /** Called on every change of phase, after it. */
  entered?(phase: Phase, previous: Phase): void;
  /** A failed attempt's error (the heartbeat tries again). */
  error?(error: Error): void;
}

/**
 * The store's lifecycle on Redis as one state machine: the phase (changed
 * in one place, by {@link PHASES}), the process id it writes under, the
 * fence and the recovery plan, the earlier process ids still to remove,
 * and how long its lease surely holds.
 */
export class Lifecycle {
  readonly #hooks: LifecycleHooks;
  #phase: Phase = "registering";
  #processId: string | undefined;
  #plan: RecoveryPlan | undefined = newPlan(undefined);
  #running: Promise<void> | undefined;
  /** Until when (this process's clock) its lease surely holds: the send time of the last renewal, plus the lease. */
  #leaseUntil = 0;
  /**
   * Earlier process ids of this store whose data may still be in Redis,
   * each with the last entry of its outbox this store had announced.
   */
  readonly retired = new Map<string, number>();

  constructor(hooks: LifecycleHooks) {
    this.#hooks = hooks;
  }

  get phase(): Phase {
    return this.#phase;
  }

  /** The process id the store writes under (the one it recovers from, until a recovery registers the next). */
  get processId(): string | undefined {
    return this.#processId;
  }

  /** What the recovery owes, while the phase is `registering`, `fenced` or `recovering`. */
  get plan(): RecoveryPlan | undefined {
    return this.#plan;
  }

  /** The attempt in progress, if any. */
  get running(): Promise<void> | undefined {
    return this.#running;
  }

  get closing(): boolean {
    return this.#phase === "closing" || this.#phase === "closed";
  }

  /** Whether the lease surely still holds now: what a cleaner must know before announcing from its outbox. */
  get leaseHolds(): boolean {
    return Date.now() < this.#leaseUntil;
  }

  /** A registration or renewal of `processId` sent at `sentAt` succeeded. */
  renewed(processId: string, sentAt: number, leaseTimeoutMs: number): void {
    if (processId === this.#processId) this.#leaseUntil = Math.max(this.#leaseUntil, sentAt + leaseTimeoutMs);
  }

  /**
   * The recovery registered `processId`: it becomes the id the store writes
   * under, and the one before is retired (`announcedThrough`: its outbox
   * entries this store announced).
   */
  adopt(processId: string, sentAt: number, leaseTimeoutMs: number, announcedThrough: number): void {
    const previous = this.#processId;
    if (previous !== undefined) this.retired.set(previous, announcedThrough);
    this.retired.delete(processId);
    this.#processId = processId;
    this.#leaseUntil = sentAt + leaseTimeoutMs;
    if (this.#plan) {
      this.#plan.processId = processId;
      this.#plan.republished = false;
    }
    debug("process id %s (was %s)", processId, previous ?? "none");
  }

  /**
   * Redis refused `error.processId`. The id the store writes under (or the
   * one the recovery registered) fences the store; an id it is already
   * recovering from only tells the plan more; an older id changes nothing.
   */
  fence(error: FencedError): void {
    const fence: Fence = { processId: error.processId, reason: error.reason };
    const plan = this.#plan;
    if (this.#phase === "live") {
      if (fence.processId !== this.#processId) return;
      this.#plan = newPlan(fence);
      return this.#dispatch("fenced", fence);
    }
    if (!plan || this.closing) return;
    if (plan.processId !== undefined && fence.processId === plan.processId) {
      // the id this recovery registered was fenced in turn: register anew
      plan.fence = fence;
      plan.processId = undefined;
      plan.republished = false;
      return this.#dispatch("fenced", fence);
    }
    if (fence.processId === this.#processId) plan.fence = fence;
  }

  /** Starts an attempt of the plan unless one runs, or nothing is owed; resolves when it ends. */
  recover(): Promise<void> {
    if (this.#running) return this.#running;
    const plan = this.#plan;
    if (!plan || (this.#phase !== "registering" && this.#phase !== "fenced")) return Promise.resolve();
    this.#dispatch("recover");
    this.#running = this.#hooks
      .run(plan)
      .then(
        (done) => this.#dispatch(done ? "recovered" : "failed"),
        (error: unknown) => {
          debug("recovery failed, the next heartbeat retries: %s", (error as Error)?.message);
          if (error instanceof FencedError) this.fence(error); // its cleanup found the id it registered fenced
          this.#dispatch("failed");
          this.#hooks.error?.(error as Error);
        },
      )
      .finally(() => {
        this.#running = undefined;
      });
    return this.#running;
  }

  /** Says goodbye: the phase it was in before. */
  close(): Phase {
    const previous = this.#phase;
    this.#dispatch("close");
    return previous;
  }

  closed(): void {
    this.#dispatch("closed");
  }

  /** The one place the phase changes. */
  #dispatch(event: LifecycleEvent, fence?: Fence): void {
    const previous = this.#phase;
    const next = nextPhase(previous, event);
    if (next === previous) return;
    this.#phase = next;
    if (next === "live") this.#plan = undefined;
    debug("%s -> %s (%s%s)", previous, next, event, fence ? `: ${fence.processId} ${fence.reason}` : "");
    this.#hooks.entered?.(next, previous);
  }
}

function newPlan(fence: Fence | undefined): RecoveryPlan {
  return { fence, processId: undefined, republished: false, loss: undefined };
}
