import type { Transition } from "@presence/core";
import createDebug from "debug";
import { machineTime } from "./machine-time";
import { MessageType, type Ack, type Announce, type Reply } from "./messages";

const debug = createDebug("presence:cluster:primary");

/**
 * How long past a deadline the primary waits before handing an assignment
 * to another store: a store that checked its deadline just in time may
 * still have its announcement and acknowledgement on the way.
 */
export const DEADLINE_MARGIN_MS = 100;

/** The most transitions one hand-off message carries. */
export const CHUNK_SIZE = 50;

/** Transitions decided together, waiting to be announced once, in the order they were decided. */
interface Pending {
  /** Not announced yet, in version order. */
  transitions: Transition[];
  /** Whose transitions these are: a later announcement about one of them waits until this one is done. */
  users: Set<string>;
  /** The store that announces them, with its reply; undefined: any live store. */
  target: string | undefined;
  /** The answer to the call that decided them, sent with them the first time. */
  reply: Reply | undefined;
  /** A CLOSE's reply: it leaves only after everything handed to its store before it. */
  last: boolean;
  /** The hand-out in progress: its assignment id, store, deadline and what the store said it announced. */
  out:
    | {
        assignment: number;
        store: string;
        deadline: number;
        announced: number;
        replyId: number | undefined;
        /** The store said it was about to announce transition `index`, in the message read at `at` (its worker's message count). */
        starting: { index: number; at: number } | undefined;
      }
    | undefined;
}

/** What the queue needs from the primary. */
export interface AnnouncementHost {
  /** The store to hand untargeted transitions to now (the likeliest to be alive), if any. */
  announcer(): string | undefined;
  /** Sends one envelope; false when the store's worker cannot be reached. */
  send(store: string, messages: Array<Reply | Announce>, deadline: number | undefined): boolean;
  /** A store let a deadline pass: hand it nothing new until it is heard from. */
  stalled(store: string): void;
}

/**
 * Every transition the primary decided, until a store has announced it:
 * each once, per user in the decider's order, within a deadline.
 *
 * A call's transitions go back with its reply, for the caller's store to
 * announce before the call resolves. Whatever no store can announce (its
 * worker died, or let the deadline pass) goes to another live store. An
 * announcement about a user leaves only once every earlier one about that
 * user was announced (or goes in the same message to the same store), so
 * that every observer hears a user's transitions in version order, even
 * when two workers announce them.
 */
export class Announcements {
  readonly #host: AnnouncementHost;
  readonly #timeoutMs: number;
  /** In the order decided (a Set keeps insertion order, and an entry keeps its place when handed out again). */
  readonly #queue = new Set<Pending>();
  readonly #byAssignment = new Map<number, Pending>();
  /** Fires at the earliest deadline still out (plus the margin). */
  #timer: NodeJS.Timeout | undefined;
  #nextAssignment = 0;
  #reassigned = 0;
  #closed = false;

  constructor(host: AnnouncementHost, timeoutMs: number) {
    this.#host = host;
    this.#timeoutMs = timeoutMs;
  }

  /** Transitions given to another store because the store they were handed to died, or let its deadline pass. */
  get reassigned(): number {
    return this.#reassigned;
  }

  /** Transitions not yet announced (replies waiting to leave included). */
  get size(): number {
    return this.#queue.size;
  }

  /** A call's reply and the transitions it decided, for `store` to announce. Call `pump()` to send. */
  addReply(store: string, reply: Reply, transitions: Transition[], last = false): void {
    this.#queue.add({ transitions, users: usersOf(transitions), target: store, reply, last, out: undefined });
  }

  /** Transitions for any live store to announce (a retired store's leaves), in chunks. Call `pump()` to send. */
  addHandoff(transitions: Transition[], store?: string): void {
    for (let i = 0; i < transitions.length; i += CHUNK_SIZE) {
      const chunk = transitions.slice(i, i + CHUNK_SIZE);
      this.#queue.add({ transitions: chunk, users: usersOf(chunk), target: store, reply: undefined, last: false, out: undefined });
    }
  }

  /** Whether the reply to `requestId` of `store` has not left yet (it waits for an earlier announcement). */
  holds(store: string, requestId: number): boolean {
    for (const pending of this.#queue) if (pending.target === store && pending.reply?.id === requestId) return true;
    return false;
  }

  /**
   * A store's word on an assignment, read as its worker's message number
   * `at`; returns the id of the request whose reply carried it, if one did.
   */
  acknowledge(store: string, ack: Ack, at: number): number | undefined {
    const pending = this.#byAssignment.get(ack.assignment);
    if (!pending?.out || pending.out.store !== store) {
      // past its deadline a store declines, so this only happens if it was stopped between its check and its announcement
      if (ack.announced > 0) debug("store %s announced %d transition(s) of assignment %d after it went to another store", store, ack.announced, ack.assignment);
      return undefined;
    }
    const { replyId } = pending.out;
    pending.out.announced = Math.min(pending.transitions.length, Math.max(pending.out.announced, ack.announced));
    if (ack.starting) pending.out.starting = { index: ack.announced, at };
    if (ack.final || pending.out.announced === pending.transitions.length) this.#settle(pending);
    return replyId;
  }

  /**
   * A store's worker is gone (its channel closed: all it sent was read):
   * what it was handed and did not announce goes to another store. A
   * transition it said it was starting went out if `wroteAfter` that word it
   * sent anything at all (its first write, the broadcast, comes first).
   */
  storeGone(store: string, wroteAfter: (at: number) => boolean): void {
    for (const pending of this.#queue) {
      if (pending.out?.store === store) {
        const { starting } = pending.out;
        if (starting && starting.index >= pending.out.announced && wroteAfter(starting.at)) pending.out.announced = starting.index + 1;
        this.#settle(pending);
      }
      else if (!pending.out && pending.target === store) {
        pending.target = undefined;
        pending.reply = undefined; // nobody is waiting for it any more
        if (pending.transitions.length === 0) this.#queue.delete(pending);
      }
    }
  }

  /**
   * Sends whatever may leave now, one envelope per store with `extra` (plain
   * replies) in front, under one deadline.
   */
  pump(extra = new Map<string, Array<Reply | Announce>>()): void {
    if (this.#closed) return;
    const deadline = machineTime() + this.#timeoutMs;
    const announcer = this.#host.announcer();
    /** Per user: the store an earlier announcement of theirs goes to in this pass, or null when one still waits. */
    const claimed = new Map<string, string | null>();
    /** Stores that an earlier announcement still waits to be sent to. */
    const waitedFor = new Set<string>();
    const handedOut: Pending[] = [];
    for (const pending of this.#queue) {
      if (pending.out) {
        for (const user of pending.users) claimed.set(user, null);
        continue;
      }
      const store = pending.target ?? announcer;
      let ready = store !== undefined && !(pending.last && waitedFor.has(store));
      for (const user of pending.users) {
        const earlier = claimed.get(user);
        if (earlier !== undefined && earlier !== store) ready = false;
      }
      if (!ready || store === undefined) {
        for (const user of pending.users) claimed.set(user, null);
        if (pending.target !== undefined) waitedFor.add(pending.target);
        continue;
      }
      for (const user of pending.users) if (!claimed.has(user)) claimed.set(user, store);
      let messages = extra.get(store);
      if (!messages) extra.set(store, (messages = []));
      messages.push(this.#handOut(pending, store, deadline));
      if (pending.out) handedOut.push(pending);
    }
    for (const [store, messages] of extra) {
      if (messages.length === 0) continue;
      const leased = messages.some((message) => message.assignment !== undefined);
      if (this.#host.send(store, messages, leased ? deadline : undefined)) continue;
      // its worker is going: its death will be reported, and these go to another store then
      for (const pending of handedOut) {
        if (pending.out?.store !== store) continue;
        this.#byAssignment.delete(pending.out.assignment);
        pending.out = undefined;
      }
    }
    if (handedOut.some((pending) => pending.out)) this.#armTimer();
  }

  /** Stops the deadline timer. */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #handOut(pending: Pending, store: string, deadline: number): Reply | Announce {
    if (pending.transitions.length === 0) {
      // a reply with nothing to announce: done once it leaves
      this.#queue.delete(pending);
      return pending.reply!;
    }
    const assignment = ++this.#nextAssignment;
    const reply = pending.target === store ? pending.reply : undefined;
    pending.out = { assignment, store, deadline, announced: 0, replyId: reply?.id, starting: undefined };
    pending.reply = undefined;
    this.#byAssignment.set(assignment, pending);
    const { transitions } = pending;
    return reply ? { ...reply, assignment, transitions } : { type: MessageType.ANNOUNCE, assignment, transitions };
  }

  /** The hand-out is over: what was announced is done, the rest waits for another store, in its place. */
  #settle(pending: Pending): void {
    const out = pending.out!;
    this.#byAssignment.delete(out.assignment);
    pending.out = undefined;
    pending.transitions = pending.transitions.slice(out.announced);
    if (pending.transitions.length === 0) {
      this.#queue.delete(pending);
      return;
    }
    debug("%d transition(s) handed to store %s go to another store", pending.transitions.length, out.store);
    this.#reassigned += pending.transitions.length;
    pending.users = usersOf(pending.transitions);
    pending.target = undefined;
    pending.reply = undefined;
  }

  /** Arms the timer for the earliest deadline out, unless it is armed already (later hand-outs have later deadlines). */
  #armTimer(): void {
    if (this.#timer || this.#closed) return;
    let earliest = Infinity;
    for (const pending of this.#queue) if (pending.out) earliest = Math.min(earliest, pending.out.deadline);
    if (earliest === Infinity) return;
    this.#timer = setTimeout(
      () => {
        // after the channels are read: an acknowledgement already on its way counts
        setImmediate(() => {
          this.#timer = undefined;
          this.#expire();
          this.#armTimer();
        });
      },
      Math.max(0, earliest + DEADLINE_MARGIN_MS - machineTime()),
    );
    this.#timer.unref();
  }

  #expire(): void {
    const now = machineTime();
    let expired = false;
    for (const pending of this.#queue) {
      if (!pending.out || now < pending.out.deadline + DEADLINE_MARGIN_MS) continue;
      debug("store %s let the deadline of assignment %d pass", pending.out.store, pending.out.assignment);
      this.#host.stalled(pending.out.store);
      // a transition it was starting passed its deadline check: it finishes that one when it runs again
      const { starting } = pending.out;
      if (starting && starting.index >= pending.out.announced) pending.out.announced = starting.index + 1;
      this.#settle(pending);
      expired = true;
    }
    if (expired) this.pump();
  }
}

function usersOf(transitions: Transition[]): Set<string> {
  return new Set(transitions.map((transition) => transition.userId));
}
