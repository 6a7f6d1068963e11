/**
 * Versions order every change of a user's presence. The store that decides a
 * transition stamps it with the next value of one counter it alone owns, so
 * any two transitions it decided compare in the order it decided them: no
 * node's clock, event loop or message order takes part downstream.
 *
 * A counter starts at its decider's clock in microseconds, so a decider that
 * restarted empty (a process, a Redis without its data) continues above every
 * version it gave before, as long as it gave fewer than a million a second
 * on average. Versions stay below 2^53 until the year 2255.
 */
export class VersionCounter {
  #last: number;

  constructor(seed = versionSeed()) {
    this.#last = seed;
  }

  /** The last version given: every transition decided so far has one at most this. */
  get current(): number {
    return this.#last;
  }

  next(): number {
    return ++this.#last;
  }
}

/** The first version of a new counter: its decider's clock, in microseconds. */
export function versionSeed(nowMs = Date.now()): number {
  return Math.floor(nowMs * 1000);
}
