import { EventEmitter } from "node:events";
import type { Namespace } from "socket.io";

/** A server-side event between nodes: "I am alive", with the sender's id. */
const ALIVE = "presence:sync:alive";
/** A node that missed this many heartbeats in a row is taken for dead. */
const MISSED_HEARTBEATS = 3;

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

/**
 * Knows which other nodes of the deployment are alive, from heartbeats sent
 * with `serverSideEmit` (which every multi-node adapter carries). A node
 * killed without a goodbye takes with it the diffs it had not flushed yet:
 * when one goes silent, `onNodeLost` runs on every survivor, which then
 * tells its own subscribers to read their state again.
 */
export class PeerNodes {
  readonly #namespace: Namespace;
  readonly #id: string;
  readonly #heartbeatMs: number;
  readonly #onNodeLost: (node: string) => void;
  /** When each other node was last heard from. */
  readonly #lastHeard = new Map<string, number>();
  readonly #timer: NodeJS.Timeout | undefined;
  readonly #listener = (node: unknown) => {
    if (typeof node !== "string" || node === this.#id) return;
    const known = this.#lastHeard.has(node);
    this.#lastHeard.set(node, Date.now());
    // a node just started (or came back): answer at once, so that it knows of this one without waiting a beat
    if (!known) this.#send();
  };

  constructor(namespace: Namespace, id: string, heartbeatMs: number, onNodeLost: (node: string) => void) {
    this.#namespace = namespace;
    this.#id = id;
    this.#heartbeatMs = heartbeatMs;
    this.#onNodeLost = onNodeLost;
    if (!reachesOtherNodes(namespace)) return;
    namespace.on(ALIVE, this.#listener);
    this.#timer = setInterval(() => this.#beat(), heartbeatMs);
    this.#timer.unref();
    this.#beat();
  }

  #send(): boolean {
    try {
      this.#namespace.serverSideEmit(ALIVE, this.#id);
      return true;
    } catch {
      return false; // the in-memory adapter: no other nodes
    }
  }

  #beat(): void {
    if (!this.#send()) return;
    const deadline = Date.now() - MISSED_HEARTBEATS * this.#heartbeatMs;
    for (const [node, heard] of this.#lastHeard) {
      if (heard >= deadline) continue;
      this.#lastHeard.delete(node);
      this.#onNodeLost(node);
    }
  }

  close(): void {
    clearInterval(this.#timer);
    this.#namespace.off(ALIVE, this.#listener);
  }
}
