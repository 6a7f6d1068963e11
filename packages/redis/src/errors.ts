import { PresenceError } from "@presence/core";
import { FenceReason } from "./encoding";

/**
 * Redis refused a write, a renewal or a cleanup because this process is no
 * longer registered under its process id (its lease expired and it was
 * cleaned up, or Redis lost or rolled back its data): nothing of the call
 * was applied. The store handles it by recovering under a new process id.
 */
export class FencedError extends PresenceError {
  readonly processId: string;
  readonly reason: FenceReason;

  constructor(processId: string, reason: FenceReason) {
    super("FENCED", `process ${processId} was fenced (${reason === FenceReason.Gone ? "not registered" : "Redis's record of it went back in time"})`);
    this.processId = processId;
    this.reason = reason;
  }
}

/**
 * The deployment's users are spread over another number of buckets than
 * this store's `buckets` option: its writes would land where the other
 * stores never look. Once Redis has said so, every connect, join and info
 * update is refused with it (a disconnect or leave of what it already wrote
 * still goes ahead, so that nothing of it stays behind).
 */
export class BucketLayoutError extends PresenceError {
  readonly expected: number;
  readonly found: number;

  constructor(expected: number, found: number) {
    super("BUCKET_LAYOUT", `this store spreads users over ${expected} bucket(s), but the deployment in Redis uses ${found}: every store of a deployment needs the same \`buckets\``);
    this.expected = expected;
    this.found = found;
  }
}

/**
 * The deployment in Redis was written under another data layout than this
 * store's (`DATA_LAYOUT` in keys.ts): layout 1 (@presence/redis 0.1) named
 * each connection by its id, layout 2 by a slot on a page (slots.ts). The
 * two cannot clean up after each other, so a store refuses a deployment of
 * the other layout as it refuses another number of buckets. To move a
 * deployment: stop every store of the old layout, delete the prefix's keys
 * (presence is rebuilt as clients reconnect), then start the new ones.
 */
export class DataLayoutError extends PresenceError {
  readonly expected: number;
  readonly found: number;

  constructor(expected: number, found: number) {
    super("DATA_LAYOUT", `this store writes data layout ${expected}, but the deployment in Redis was written with layout ${found}: stop every store of the other layout and delete the prefix's keys before starting these`);
    this.expected = expected;
    this.found = found;
  }
}
