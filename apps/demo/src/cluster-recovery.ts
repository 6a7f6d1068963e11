import cluster, { type Worker } from "node:cluster";
import { NodeClusterAdapter } from "@socket.io/cluster-adapter";
import type { Namespace } from "socket.io";
import { MessageType } from "socket.io-adapter";

/**
 * Connection state recovery for the Node cluster adapter, which has none of
 * its own (`@socket.io/cluster-adapter` 0.3 answers every recovery with a new
 * session). A socket that drops on one worker and comes back on another keeps
 * its id, its rooms, its data and the broadcasts it missed.
 *
 * The primary keeps the record: it already sees every broadcast pass between
 * the workers, so it logs each with the offset its emitter gave it (the
 * worker's id and a counter), and it keeps the sessions the workers persist.
 * A worker restoring a session asks the primary, which answers with the
 * session and the broadcasts after the client's last offset that reached the
 * socket's rooms, the same rule as Socket.IO's in-memory adapter. What the
 * primary holds is bounded: sessions and broadcasts older than the recovery
 * window are dropped, and at most `maxPackets` broadcasts are kept (a client
 * whose offset fell out gets a new session, as with any adapter).
 */

type ClusterMessage = Parameters<NodeClusterAdapter["doPublish"]>[0];
type Session = Awaited<ReturnType<NodeClusterAdapter["restoreSession"]>>;
/** What Socket.IO takes from an adapter for "no session to restore": a new one (its own adapters answer null). */
const NEW_SESSION = null as unknown as Session;

const ADAPTER_SOURCE = "_sio_adapter";
const RECOVERY_SOURCE = "_presence_demo_recovery";

/** How long the worker waits for the primary's answer before giving the client a new session. */
const RESTORE_TIMEOUT_MS = 2000;

type RecoveryMessage =
  | { source: typeof RECOVERY_SOURCE; type: "persist"; nsp: string; session: Session }
  | { source: typeof RECOVERY_SOURCE; type: "restore"; nsp: string; request: number; pid: string; offset: string }
  | { source: typeof RECOVERY_SOURCE; type: "restored"; nsp: string; request: number; session: (Session & { missedPackets: unknown[][] }) | null };

interface EncodedOptions {
  rooms: string[];
  except: string[];
  flags?: { volatile?: boolean; local?: boolean };
}

interface LoggedPacket {
  offset: string;
  data: unknown[];
  rooms: string[];
  except: string[];
  at: number;
}

export interface RecoveryOptions {
  /** The recovery window: Socket.IO's `connectionStateRecovery.maxDisconnectionDuration`. */
  maxDisconnectionDuration: number;
  /**
   * At most this many broadcasts are kept, per namespace (about 200 bytes
   * each). Default 100,000: every connection adds one (its
   * `presence:session`), so a reconnect storm of that many still recovers.
   */
  maxPackets?: number;
}

const isRecoveryMessage = (message: unknown): message is RecoveryMessage =>
  typeof message === "object" && message !== null && (message as { source?: unknown }).source === RECOVERY_SOURCE;

/** The worker side: a cluster adapter whose broadcasts carry offsets and whose sessions live in the primary. */
class RecoveringClusterAdapter extends NodeClusterAdapter {
  #sent = 0;
  #requests = 0;
  readonly #pending = new Map<number, (session: (Session & { missedPackets: unknown[][] }) | null) => void>();

  constructor(nsp: Namespace) {
    super(nsp);
    process.on("message", (message: unknown) => {
      if (!isRecoveryMessage(message) || message.type !== "restored" || message.nsp !== this.nsp.name) return;
      this.#pending.get(message.request)?.(message.session);
      this.#pending.delete(message.request);
    });
  }

  override doPublish(message: ClusterMessage & { offset?: string }): Promise<string> {
    if (message.type !== MessageType.BROADCAST) return super.doPublish(message);
    // unique across the cluster's life (a primary never reuses a worker id), and carried by the message,
    // so that the other workers and the primary's log know the packet by the offset its emitter gave it
    message.offset = `${cluster.worker?.id ?? 0}-${++this.#sent}`;
    void super.doPublish(message);
    return Promise.resolve(message.offset as string);
  }

  override onMessage(message: ClusterMessage & { offset?: string }, offset?: string): void {
    super.onMessage(message, offset ?? message.offset);
  }

  override persistSession(session: Session): void {
    process.send?.({ source: RECOVERY_SOURCE, type: "persist", nsp: this.nsp.name, session } satisfies RecoveryMessage);
  }

  override restoreSession(pid: string, offset: string): Promise<Session> {
    if (typeof pid !== "string" || typeof offset !== "string" || !process.send) return Promise.resolve(NEW_SESSION);
    const request = ++this.#requests;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pending.delete(request);
        resolve(NEW_SESSION);
      }, RESTORE_TIMEOUT_MS);
      timer.unref();
      this.#pending.set(request, (session) => {
        clearTimeout(timer);
        resolve(session ?? NEW_SESSION);
      });
      process.send?.({ source: RECOVERY_SOURCE, type: "restore", nsp: this.nsp.name, request, pid, offset } satisfies RecoveryMessage);
    });
  }
}

/** The worker side: pass as the Socket.IO server's `adapter`, with `connectionStateRecovery` on. */
export function createRecoveringAdapter(): typeof RecoveringClusterAdapter {
  // Socket.IO constructs the adapter of each namespace with `new`
  return RecoveringClusterAdapter;
}

/** One namespace's broadcasts, oldest first, found by offset in constant time; trimmed in chunks. */
class PacketLog {
  #entries: LoggedPacket[] = [];
  /** The absolute position of `#entries[0]`. */
  #base = 0;
  readonly #positions = new Map<string, number>();

  constructor(private readonly max: number) {}

  push(packet: LoggedPacket): void {
    this.#positions.set(packet.offset, this.#base + this.#entries.length);
    this.#entries.push(packet);
    // a tenth over the cap at most, so that trimming is not a copy per broadcast
    if (this.#entries.length > this.max + Math.ceil(this.max / 10)) this.#drop(this.#entries.length - this.max);
  }

  /** Drops what is older than `since`. */
  expire(since: number): void {
    let stale = 0;
    while (stale < this.#entries.length && this.#entries[stale]!.at < since) stale++;
    this.#drop(stale);
  }

  /** The packets after `offset`, or undefined when it is not (or no longer) here. */
  after(offset: string): LoggedPacket[] | undefined {
    const position = this.#positions.get(offset);
    return position === undefined ? undefined : this.#entries.slice(position - this.#base + 1);
  }

  #drop(count: number): void {
    for (const packet of this.#entries.slice(0, count)) this.#positions.delete(packet.offset);
    this.#entries = this.#entries.slice(count);
    this.#base += count;
  }
}

/** The primary side, beside the cluster adapter's own `setupPrimary()`: the sessions and the broadcasts' log. */
export function setupRecoveryPrimary({ maxDisconnectionDuration, maxPackets = 100_000 }: RecoveryOptions): void {
  const sessions = new Map<string, { session: Session; at: number }>();
  const logs = new Map<string, PacketLog>();
  const expire = (now: number) => {
    for (const [pid, { at }] of sessions) if (at + maxDisconnectionDuration < now) sessions.delete(pid);
    for (const log of logs.values()) log.expire(now - maxDisconnectionDuration);
  };
  setInterval(() => expire(Date.now()), Math.min(60_000, maxDisconnectionDuration)).unref();

  cluster.on("message", (worker: Worker, message: unknown) => {
    if (isRecoveryMessage(message)) {
      if (message.type === "persist") sessions.set(message.session.pid, { session: message.session, at: Date.now() });
      else if (message.type === "restore") worker.send({ ...restore(message), source: RECOVERY_SOURCE, type: "restored" }, undefined, ignore);
      return;
    }
    const broadcast = message as { source?: string; type?: number; nsp?: string; offset?: string; data?: { packet?: { type?: number; id?: number; data?: unknown[] }; opts?: EncodedOptions; requestId?: string } };
    if (broadcast?.source !== ADAPTER_SOURCE || broadcast.type !== MessageType.BROADCAST || typeof broadcast.offset !== "string") return;
    const { packet, opts, requestId } = broadcast.data ?? {};
    // what Socket.IO keeps for recovery: events without an acknowledgement, not volatile
    if (requestId !== undefined || packet?.type !== 2 || packet.id !== undefined || !Array.isArray(packet.data) || !opts || opts.flags?.volatile) return;
    const nsp = broadcast.nsp ?? "/";
    let log = logs.get(nsp);
    if (!log) logs.set(nsp, (log = new PacketLog(maxPackets)));
    log.push({ offset: broadcast.offset, data: [...packet.data, broadcast.offset], rooms: opts.rooms, except: opts.except, at: Date.now() });
  });

  function restore({ nsp, request, pid, offset }: Extract<RecoveryMessage, { type: "restore" }>): Omit<Extract<RecoveryMessage, { type: "restored" }>, "source" | "type"> {
    const none = { nsp, request, session: null };
    const kept = sessions.get(pid);
    sessions.delete(pid);
    if (!kept || kept.at + maxDisconnectionDuration < Date.now()) return none;
    const after = logs.get(nsp)?.after(offset);
    if (after === undefined) return none; // the offset fell out of the log: a new session
    const rooms = kept.session.rooms;
    const missedPackets = after
      .filter((packet) => (packet.rooms.length === 0 || rooms.some((room) => packet.rooms.includes(room))) && rooms.every((room) => !packet.except.includes(room)))
      .map((packet) => packet.data);
    return { nsp, request, session: { ...kept.session, missedPackets } };
  }
}

function ignore(): void {}
