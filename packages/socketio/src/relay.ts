import type { Transition } from "@presence/core";
import { randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import createDebug from "debug";
import type { Namespace } from "socket.io";
import { DeliveryOrder, REMEMBERED, type LastDelivered } from "./delivery-order";

const debug = createDebug("presence:socketio:relay");

/** Server-side events between nodes: a transition, and "I am alive" with the number of the last one sent. */
const RELAYED = "presence:relay:transition";
const ALIVE = "presence:relay:alive";
/** A node that missed this many heartbeats in a row is taken for dead. */
const MISSED_HEARTBEATS = 3;

interface Relayed {
  node: string;
  seq: number;
  transition: Transition;
}

interface Alive {
  node: string;
  seq: number;
}

/**
 * Whether the namespace's adapter reaches other nodes with `serverSideEmit`.
 * Socket.IO's in-memory adapter (the base every adapter extends, itself an
 * EventEmitter) has no other nodes: its `serverSideEmit` only prints a
 * warning, on every call.
 */
export function reachesOtherNodes(namespace: Namespace): boolean {
  let base: object | null = Object.getPrototypeOf(namespace.adapter) as object | null;
  while (base && Object.getPrototypeOf(base) && Object.getPrototypeOf(base) !== EventEmitter.prototype) {
    base = Object.getPrototypeOf(base) as object;
  }
  return namespace.adapter.serverSideEmit !== (base as { serverSideEmit?: unknown } | null)?.serverSideEmit;
}

export interface RelayHandlers {
  /**
   * A transition, from this node's store or relayed from another node: every
   * node hears every one. `seq` is its number in this node's delivery order,
   * `previous` what was delivered for its user (or user in its room) before it.
   */
  deliver(transition: Transition, seq: number, previous: LastDelivered | undefined): void;
  /** Transitions may have been lost on the way (a gap in a node's numbers, a node gone silent): views must read their state again. */
  lost(why: string): void;
}

/**
 * Every node hears every transition of the deployment: its own store's, and
 * each other node's, relayed with `serverSideEmit` and numbered per sender.
 * Each node then serves its own sockets (per-user events, diffs), in the
 * decider's order. A gap in a sender's numbers, or a sender that falls
 * silent (its heartbeat carries its last number), means transitions were
 * lost: `lost()` makes the views read their state again.
 *
 * Delivery goes through the node's `order` (delivery-order.ts): a late
 * transition is dropped, the others numbered. `seen` is the last number
 * given: a state read that starts after it holds every change numbered at
 * most that, which is what a state frame's version says.
 */
export class TransitionRelay {
  readonly #namespace: Namespace;
  readonly #handlers: RelayHandlers;
  readonly #heartbeatMs: number;
  readonly #multiNode: boolean;
  readonly #node = randomBytes(6).toString("base64url");
  #seq = 0;
  /** Per other node: the last number heard, and when. */
  readonly #peers = new Map<string, { seq: number; heard: number }>();
  readonly #timer: NodeJS.Timeout | undefined;
  /** What this node delivered last per user: too many users to remember them all that long is a possible loss. */
  readonly order = new DeliveryOrder(() => this.#lose(`more than ${REMEMBERED} users and room members changed within a short while: a late transition could go unnoticed`));
  /** Once an unversioned transition was delivered, nothing orders the deliveries: `seen` is `null`. */
  #unversioned = false;
  #closed = false;

  readonly #onRelayed = (message: unknown) => {
    if (!isRelayed(message) || message.node === this.#node || this.#closed) return;
    this.#heard(message.node, message.seq, true);
    this.#deliver(message.transition);
  };

  readonly #onAlive = (message: unknown) => {
    if (!isAlive(message) || message.node === this.#node || this.#closed) return;
    const known = this.#peers.has(message.node);
    this.#heard(message.node, message.seq, false);
    // a node just started (or came back): answer at once, so that it knows of this one without waiting a beat
    if (!known) this.#emit(ALIVE, { node: this.#node, seq: this.#seq } satisfies Alive);
  };

  constructor(namespace: Namespace, handlers: RelayHandlers, heartbeatMs: number) {
    this.#namespace = namespace;
    this.#handlers = handlers;
    this.#heartbeatMs = heartbeatMs;
    this.#multiNode = reachesOtherNodes(namespace);
    if (!this.#multiNode) return;
    namespace.on(RELAYED, this.#onRelayed);
    namespace.on(ALIVE, this.#onAlive);
    this.#timer = setInterval(() => this.#beat(), heartbeatMs);
    this.#timer.unref();
    this.#beat();
  }

  get seen(): number | null {
    return this.#unversioned ? null : this.order.seq;
  }

  /** A transition this node's store announced: delivered here, then to every other node. */
  publish(transition: Transition): void {
    this.#deliver(transition);
    if (this.#multiNode) this.#emit(RELAYED, { node: this.#node, seq: ++this.#seq, transition } satisfies Relayed);
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#timer);
    this.#namespace.off(RELAYED, this.#onRelayed);
    this.#namespace.off(ALIVE, this.#onAlive);
  }

  #deliver(transition: Transition): void {
    if (transition.version === undefined) this.#unversioned = true;
    const admitted = this.order.admit(transition);
    if (admitted) this.#handlers.deliver(admitted.transition, admitted.seq, admitted.previous);
    else debug("late transition dropped: %o", transition);
  }

  /** Records a sender's number: a transition skipped (or one announced by a heartbeat but never received) is a loss. */
  #heard(node: string, seq: number, transition: boolean): void {
    const peer = this.#peers.get(node);
    const expected = transition ? seq - 1 : seq;
    if (peer && peer.seq < expected) this.#lose(`node ${node} sent transitions up to ${seq}, but ${peer.seq} was the last to arrive`);
    // a node heard for the first time may have sent before: only its next numbers are checked
    this.#peers.set(node, { seq: Math.max(peer?.seq ?? 0, seq), heard: Date.now() });
  }

  #lose(why: string): void {
    debug("transitions lost: %s", why);
    this.#handlers.lost(why);
  }

  #beat(): void {
    if (!this.#emit(ALIVE, { node: this.#node, seq: this.#seq } satisfies Alive)) return;
    const deadline = Date.now() - MISSED_HEARTBEATS * this.#heartbeatMs;
    for (const [node, { heard }] of this.#peers) {
      if (heard >= deadline) continue;
      this.#peers.delete(node);
      this.#lose(`node ${node} went silent: what it had not relayed is lost`);
    }
  }

  #emit(event: string, message: Relayed | Alive): boolean {
    try {
      this.#namespace.serverSideEmit(event, message);
      return true;
    } catch (error) {
      debug("serverSideEmit failed: %O", error);
      return false;
    }
  }
}

function isAlive(message: unknown): message is Alive {
  const m = message as Partial<Alive> | null;
  return typeof m === "object" && m !== null && typeof m.node === "string" && Number.isSafeInteger(m.seq);
}

function isRelayed(message: unknown): message is Relayed {
  const m = message as Partial<Relayed> | null;
  return isAlive(message) && typeof m?.transition === "object" && m.transition !== null && typeof (m.transition as { userId?: unknown }).userId === "string";
}
