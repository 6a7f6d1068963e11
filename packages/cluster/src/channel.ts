import type { PrimaryEnvelope, WorkerEnvelope } from "./messages";

/**
 * The primary's end of the transport: one peer per worker. Like
 * ClusterAdapter's `doPublish`, this is all a transport supplies; the
 * protocol lives in `PresencePrimary` and `ClusterStore`.
 */
export interface PrimaryChannel {
  /** Sends to one worker; false when that worker is gone (the message is dropped). */
  send(peer: string, envelope: PrimaryEnvelope): boolean;
  /** Delivers every envelope of this package from any worker. */
  onMessage(listener: (peer: string, envelope: WorkerEnvelope) => void): void;
  /** Called once per worker that goes away (exit, kill, lost channel), after everything it sent was delivered. */
  onPeerGone(listener: (peer: string) => void): void;
  /**
   * Called, in order with `onMessage`, for every other message a worker sends
   * on the same channel (sticky's, the cluster adapter's broadcasts, the
   * app's). Optional: a transport that carries nothing else leaves it out.
   */
  onOtherMessage?(listener: (peer: string) => void): void;
  /** Stops listening. */
  close(): void;
}

/** A worker's end of the transport: one peer, the primary. */
export interface WorkerChannel {
  /** Sends to the primary; false when the primary cannot be reached. */
  send(envelope: WorkerEnvelope): boolean;
  /** Delivers every envelope of this package from the primary. Returns an unsubscribe function. */
  onMessage(listener: (envelope: PrimaryEnvelope) => void): () => void;
  /** Called once if the primary becomes unreachable. Returns an unsubscribe function. */
  onGone(listener: () => void): () => void;
}

/** A worker end of an in-memory channel, with a way to make it vanish as a killed process does. */
export interface MemoryWorkerChannel extends WorkerChannel {
  /** This worker's peer id on the primary's side. */
  readonly peer: string;
  /** Makes this worker vanish without a goodbye: nothing more is delivered either way. */
  kill(): void;
  /**
   * Stops this worker's traffic as SIGSTOP stops a process: what it is sent
   * waits, and so does what it sends, until the returned function resumes it
   * (then both are delivered in order). Its timers run on (one process).
   * `"inbound"` holds only what it is sent: a blocked event loop whose
   * requests had already left.
   */
  pause(traffic?: "both" | "inbound"): () => void;
}

/** A primary channel and as many worker channels as wanted, all in one process. */
export interface MemoryChannel {
  primary: PrimaryChannel;
  /** A new "worker" linked to the primary. */
  worker(): MemoryWorkerChannel;
}

/**
 * An in-memory transport: deliveries are asynchronous and go through a JSON
 * round trip, as with the cluster's default serialization, so the protocol
 * runs in one process exactly as it does over IPC. For tests, and for running
 * several "workers" of one deployment in a single process.
 */
export function createMemoryChannel(): MemoryChannel {
  const toPrimary = new Set<(peer: string, envelope: WorkerEnvelope) => void>();
  const peerGone = new Set<(peer: string) => void>();
  const workers = new Map<string, { deliver: (envelope: PrimaryEnvelope) => void; later: (delivery: () => void) => void }>();
  let nextPeer = 0;
  let closed = false;

  const copy = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

  const primary: PrimaryChannel = {
    send(peer, envelope) {
      const worker = workers.get(peer);
      if (!worker || closed) return false;
      const message = copy(envelope);
      worker.later(() => worker.deliver(message));
      return true;
    },
    onMessage: (listener) => void toPrimary.add(listener),
    onPeerGone: (listener) => void peerGone.add(listener),
    close() {
      closed = true;
      toPrimary.clear();
      peerGone.clear();
    },
  };

  const worker = (): MemoryWorkerChannel => {
    const peer = String(++nextPeer);
    const listeners = new Set<(envelope: PrimaryEnvelope) => void>();
    let alive = true;
    /** While paused: deliveries held back, in order, and whether what it sends is held too. */
    let held: Array<() => void> | undefined;
    let holdsSends = false;
    const later = (delivery: () => void, send = false) =>
      setImmediate(() => (held && (holdsSends || !send) ? held.push(delivery) : delivery()));
    workers.set(peer, { deliver: (envelope) => alive && listeners.forEach((listener) => listener(envelope)), later });
    return {
      peer,
      send(envelope) {
        if (!alive || closed) return false;
        const message = copy(envelope);
        // what was sent before a kill still arrives, before the primary hears of the death (as bytes in a pipe do)
        later(() => toPrimary.forEach((listener) => listener(peer, message)), true);
        return true;
      },
      onMessage(listener) {
        listeners.add(listener);
        return () => listeners.delete(listener);
      },
      onGone: () => () => {}, // the in-memory primary never goes away
      kill() {
        if (!alive) return;
        alive = false;
        workers.delete(peer);
        // what it sent while paused is lost with it, as a stopped process's unsent writes are
        held = undefined;
        setImmediate(() => peerGone.forEach((listener) => listener(peer)));
      },
      pause(traffic = "both") {
        held ??= [];
        holdsSends = traffic === "both";
        return () => {
          const deliveries = held ?? [];
          held = undefined;
          for (const delivery of deliveries) delivery();
        };
      },
    };
  };

  return { primary, worker };
}
