import type { Transition } from "@presence/core";

/** How many users' (and room members') last transitions a node remembers to drop late ones; the oldest are forgotten first. */
const REMEMBERED = 100_000;

/** The last transition delivered here for one user (or one user in one room). */
export interface LastDelivered {
  /** Its decider's version (-Infinity for a store that does not version: nothing is then late). */
  readonly version: number;
  /** Whether it said "in" (a connect, a join, an update) rather than "out". */
  readonly present: boolean;
  /** Its delivery number on this node. */
  readonly seq: number;
}

/** The key of a transition's subject: `u:<user>`, or `r:<room> <user>` for a room's member. */
export const subjectOf = (transition: Transition): string => ("room" in transition ? `r:${transition.room} ${transition.userId}` : `u:${transition.userId}`);

/**
 * The order in which a node hands transitions to its sockets. A store may
 * have several deciders (the buckets of a `RedisStore`, each with its own
 * version counter), whose versions order each user's changes but cannot be
 * compared across users. So the node numbers what it delivers itself, 1, 2,
 * 3...: a transition is delivered only when it is newer, by its decider's
 * version, than the last one delivered for its user (or user in its room),
 * and then gets the next number. Per user, the numbers follow the decider's
 * order; across users they follow delivery, and since a transition is
 * delivered only once its decider applied it, a read that starts when the
 * number is `S` sees every change numbered at most `S`. States, diffs and
 * counts are stamped with these numbers, so one counter orders everything a
 * client of this node receives, whatever the store.
 */
export class DeliveryOrder {
  readonly #last = new Map<string, LastDelivered>();
  #seq = 0;

  /** The number of the last transition delivered. */
  get seq(): number {
    return this.#seq;
  }

  last(subject: string): LastDelivered | undefined {
    return this.#last.get(subject);
  }

  /**
   * Numbers a transition, or returns `undefined` when it is late (a newer
   * change of its subject was delivered already). `previous` is what was
   * delivered for the subject before it.
   */
  admit(transition: Transition): { seq: number; previous: LastDelivered | undefined } | undefined {
    const subject = subjectOf(transition);
    const previous = this.#last.get(subject);
    const version = transition.version ?? Number.NEGATIVE_INFINITY;
    if (transition.version !== undefined && previous && previous.version >= version) return undefined;
    const seq = ++this.#seq;
    this.#remember(subject, { version, present: transition.type !== "disconnected" && transition.type !== "left", seq });
    return { seq, previous };
  }

  /** Records a correction sent for a subject (what a read found): it keeps the decider's version of the last transition. */
  correct(subject: string, present: boolean): void {
    this.#remember(subject, { version: this.#last.get(subject)?.version ?? Number.NEGATIVE_INFINITY, present, seq: this.#seq });
  }

  /** The users last delivered online here. */
  *present(): Generator<string> {
    for (const [subject, last] of this.#last) if (subject.startsWith("u:") && last.present) yield subject.slice(2);
  }

  #remember(subject: string, last: LastDelivered): void {
    this.#last.delete(subject); // re-inserted last: the map stays ordered oldest first
    this.#last.set(subject, last);
    if (this.#last.size > REMEMBERED) this.#last.delete(this.#last.keys().next().value!);
  }
}
