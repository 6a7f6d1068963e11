import cluster from "node:cluster";
import { LIMIT_NAMES, LocalPresence, LocalStore, assertKnownOptions, type PresenceLimits } from "@presence/core";

let warnedInWorker = false;

/** Options of {@link MemoryStore}: the input limits, with the defaults documented on `PresenceLimits`. */
export type MemoryStoreOptions = Partial<PresenceLimits>;

/**
 * Presence for one process: the classic standalone recipe's Map, made exact
 * and idempotent by core's `LocalPresence`, with rooms and user info.
 * Transitions are exact because this process sees every connection, and
 * versioned by this process's counter.
 */
export class MemoryStore extends LocalStore {
  constructor(options: MemoryStoreOptions = {}) {
    // a typo (`maxUserIdByte`) is an InvalidOptionError naming the closest option, never silently ignored
    assertKnownOptions("MemoryStore", options, LIMIT_NAMES);
    super(new LocalPresence(options));
    if (cluster.isWorker && !warnedInWorker) {
      // each worker would count only its own sockets: presence would differ from worker to worker
      warnedInWorker = true;
      process.emitWarning("MemoryStore in a Node cluster worker counts this worker's connections only: use @presence/cluster (or @presence/redis) for the whole cluster", {
        type: "PresenceWarning",
        code: "PRESENCE_MEMORY_IN_WORKER",
      });
    }
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
