import { LIMIT_NAMES, LocalPresence, LocalStore, assertKnownOptions, type PresenceLimits } from "@presence/core";

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
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
