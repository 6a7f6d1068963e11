import type { Transition, UserInfo } from "@presence/core";

/** How many users' (and room members') last transitions a node remembers to drop late ones; the oldest are forgotten first. */
export const REMEMBERED = 100_000;
/** A subject forgotten sooner than this after its last transition may still meet a late one: the views read their state again. */
const YOUNG_MS = 30_000;

/** The last transition delivered here for one user (or one user in one room). */
export interface LastDelivered {
  /** Its decider's version (-Infinity for a store that does not version: nothing is then late). */
  readonly version: number;
  /** Whether it said "in" (a connect, a join, an update) rather than "out". */
  readonly present: boolean;
  /** Its delivery number on this node. */
  readonly seq: number;
  /** For a user: their info as last delivered (a late room join takes it). */
  readonly info?: UserInfo | undefined;
  /** When it was delivered, in ms since the order was made (see `YOUNG_MS`). */
  readonly at: number;
}

/** What `admit` lets through: the transition to deliver (see `admit`), its number and what was delivered for its subject before. */
export interface Admitted {
  transition: Transition;
  seq: number;
  previous: LastDelivered | undefined;
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
 * client of this node receives, however many deciders the store has (a
 * store that does not version at all leaves them unversioned).
 *
 * Two transitions of one user that overtake each other keep what each says:
 * an info update is decided only while its user is online, so one that
 * arrives before the user's connect (or after a leave it is newer than) is
 * delivered as that connect, and the connect arriving later is late; a room
 * join that arrives after a newer update of its user carries that update's
 * info.
 */
export class DeliveryOrder {
  readonly #last = new Map<string, LastDelivered>();
  readonly #started = Date.now();
  readonly #forgotYoung: () => void;
  #seq = 0;
  /** When `forgotYoung` was last called: at most once per `YOUNG_MS`. */
  #forgotAt = Number.NEGATIVE_INFINITY;

  /** `forgotYoung` is called (at most once per `YOUNG_MS`) when a subject had to be forgotten within `YOUNG_MS` of its last transition. */
  constructor(forgotYoung: () => void = () => {}) {
    this.#forgotYoung = forgotYoung;
  }

  /** The number of the last transition delivered. */
  get seq(): number {
    return this.#seq;
  }

  last(subject: string): LastDelivered | undefined {
    return this.#last.get(subject);
  }

  /** Numbers a transition, or returns `undefined` when it is late (a newer change of its subject was delivered already). */
  admit(transition: Transition): Admitted | undefined {
    const subject = subjectOf(transition);
    const previous = this.#last.get(subject);
    const versioned = transition.version !== undefined;
    const version = transition.version ?? Number.NEGATIVE_INFINITY;
    if (versioned && previous && previous.version >= version) return undefined;
    let delivered = transition;
    if (transition.type === "updated" && versioned && !previous?.present) {
      delivered = { type: "connected", userId: transition.userId, info: transition.info, version };
    } else if (transition.type === "joined" && versioned) {
      const user = this.#last.get(`u:${transition.userId}`);
      if (user?.present && user.info !== undefined && user.version > version) delivered = { ...transition, info: user.info };
    }
    const present = delivered.type !== "disconnected" && delivered.type !== "left";
    const info = "room" in delivered || !present ? undefined : (delivered as { info?: UserInfo }).info;
    const seq = ++this.#seq;
    this.#remember(subject, { version, present, seq, info, at: Date.now() - this.#started });
    return { transition: delivered, seq, previous };
  }

  /**
   * Records a correction sent for a user: what a read as of `version` (their
   * decider's) found, so that a transition versioned at most that, arriving
   * later, is late. Without a version it keeps the last transition's.
   */
  correct(subject: string, present: boolean, version?: number, info?: UserInfo): void {
    const last = this.#last.get(subject);
    this.#remember(subject, {
      version: version ?? last?.version ?? Number.NEGATIVE_INFINITY,
      present,
      seq: this.#seq,
      info: present ? (info ?? last?.info) : undefined,
      at: last?.at ?? 0,
    });
  }

  /** The users last delivered online here. */
  *present(): Generator<string> {
    for (const [subject, last] of this.#last) if (subject.startsWith("u:") && last.present) yield subject.slice(2);
  }

  #remember(subject: string, last: LastDelivered): void {
    this.#last.delete(subject); // re-inserted last: the map stays ordered oldest first
    this.#last.set(subject, last);
    if (this.#last.size <= REMEMBERED) return;
    const [oldest, forgotten] = this.#last.entries().next().value!;
    this.#last.delete(oldest);
    const now = Date.now() - this.#started;
    if (now - forgotten.at < YOUNG_MS && now - this.#forgotAt >= YOUNG_MS) {
      this.#forgotAt = now;
      this.#forgotYoung();
    }
  }
}
