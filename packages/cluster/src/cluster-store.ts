import { randomUUID } from "node:crypto";
import cluster from "node:cluster";
import {
  StoreClosedError,
  StoreEvents,
  StoreUnavailableError,
  assertConnectionId,
  assertRoom,
  assertUserId,
  inPages,
  parseUserInfo,
  resolveLimits,
  serializeUserInfo,
  type ErrorListener,
  type PresenceLimits,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { WorkerChannel } from "./channel";
import { ClusterSetupError, fromWireError } from "./errors";
import { clusterWorkerChannel } from "./ipc";
import {
  MESSAGE_SOURCE,
  MessageType,
  fromEntry,
  type DisconnectAnswer,
  type PrimaryEnvelope,
  type WorkerEnvelope,
  type ReplyValue,
  type Request,
  type UserEntry,
} from "./messages";
import { LIMITS_ENV, PRIMARY_ENV, type ChannelStats } from "./primary";

const debug = createDebug("presence:cluster");

export interface ClusterStoreOptions extends Partial<PresenceLimits> {
  /**
   * How long a call waits for the primary's answer, in ms, before it rejects
   * with `StoreUnavailableError`.
   * @default 5000
   */
  timeoutMs?: number;
  /**
   * The channel to the primary. Only for tests and custom transports, such
   * as `createMemoryChannel().worker()` to run a deployment in one process.
   * @default the Node cluster IPC channel (`process.send`)
   */
  channel?: WorkerChannel;
}

type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, "id"> : never) : never;

interface Batch {
  timer: NodeJS.Timeout | undefined;
  /** Calls of this batch still waiting for their reply. */
  waiting: number;
}

interface PendingCall {
  /** Set when the call leaves in a batch. */
  batch: Batch | undefined;
  resolve: (value: ReplyValue) => void;
  reject: (error: Error) => void;
}

/** The limits `setupPrimary()` published to the workers' environment. */
function primaryLimits(): Partial<PresenceLimits> {
  try {
    return definedLimits(JSON.parse(process.env[LIMITS_ENV] ?? "{}") as Partial<PresenceLimits>);
  } catch {
    return {};
  }
}

function definedLimits({ maxUserIdBytes, maxRoomBytes, maxUserInfoBytes }: Partial<PresenceLimits>): Partial<PresenceLimits> {
  const limits: Partial<PresenceLimits> = {};
  if (maxUserIdBytes !== undefined) limits.maxUserIdBytes = maxUserIdBytes;
  if (maxRoomBytes !== undefined) limits.maxRoomBytes = maxRoomBytes;
  if (maxUserInfoBytes !== undefined) limits.maxUserInfoBytes = maxUserInfoBytes;
  return limits;
}

/** Where `new ClusterStore()` cannot run, a message that says what to do instead. */
function defaultChannel(): WorkerChannel {
  if (cluster.isWorker && process.env[PRIMARY_ENV] === "1") return clusterWorkerChannel();
  if (cluster.isWorker) {
    throw new ClusterSetupError(
      "no presence primary for this worker: call setupPrimary() from @presence/cluster in the primary before forking",
    );
  }
  if (process.env[PRIMARY_ENV] === "1") {
    throw new ClusterSetupError(
      "ClusterStore runs in the cluster workers, not in the primary: the primary keeps the truth once setupPrimary() is called",
    );
  }
  throw new ClusterSetupError(
    "ClusterStore runs in a Node cluster worker: call setupPrimary() from @presence/cluster in the primary before forking (for one process, use @presence/memory)",
  );
}

/**
 * A cluster worker's presence store: every call goes to the primary, which
 * keeps the one truth and decides each transition exactly once. Calls made in
 * one event-loop turn travel together in one IPC message, and come back in one.
 */
export class ClusterStore implements PresenceStore {
  /** This store's id on the primary. */
  readonly id = randomUUID();
  readonly limits: PresenceLimits;
  /** IPC messages and calls, to check what a load costs. */
  readonly stats: ChannelStats = { messagesSent: 0, messagesReceived: 0, calls: 0 };
  readonly #timeoutMs: number;
  readonly #channel: WorkerChannel;
  readonly #events = new StoreEvents();
  readonly #pending = new Map<number, PendingCall>();
  readonly #detach: Array<() => void>;
  #outbox: Request[] = [];
  #nextId = 0;
  /** Set once `close()` is called: every later call rejects. */
  #closed = false;
  /** Set once CLOSE is queued: later hand-offs go to another store. */
  #closeSent = false;
  /** Set when the primary cannot be reached any more. */
  #gone = false;
  #closing: Promise<void> | undefined;

  constructor(options: ClusterStoreOptions = {}) {
    const timeoutMs = options.timeoutMs ?? 5000;
    // a timer longer than 2^31 - 1 ms would fire at once
    if (typeof timeoutMs !== "number" || !Number.isFinite(timeoutMs) || timeoutMs <= 0 || timeoutMs > 2 ** 31 - 1) {
      throw new TypeError(`ClusterStore: option timeoutMs must be a positive number of ms (at most 2^31 - 1), got ${String(timeoutMs)}`);
    }
    if (options.channel !== undefined && (typeof options.channel !== "object" || typeof options.channel.send !== "function")) {
      throw new TypeError("ClusterStore: option channel must be a WorkerChannel (send, onMessage, onGone)");
    }
    this.#timeoutMs = timeoutMs;
    this.#channel = options.channel ?? defaultChannel();
    this.limits = resolveLimits({ ...(options.channel ? {} : primaryLimits()), ...definedLimits(options) });
    this.#detach = [
      this.#channel.onMessage((envelope) => this.#receive(envelope)),
      this.#channel.onGone(() => this.#primaryGone()),
    ];
    this.#call({ type: MessageType.OPEN }).catch((error: unknown) => this.#events.error(error));
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.limits.maxUserIdBytes);
    // a copy taken now: the caller may change its object before the batch leaves
    const copy = info === undefined ? undefined : parseUserInfo(serializeUserInfo(info, this.limits.maxUserInfoBytes));
    return (await this.#call(copy === undefined ? { type: MessageType.CONNECT, connectionId, userId } : { type: MessageType.CONNECT, connectionId, userId, info: copy })) as boolean;
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.#assertOpen();
    const { offline, left } = (await this.#call({ type: MessageType.DISCONNECT, connectionId })) as DisconnectAnswer;
    for (const transition of left) this.#events.announce(transition);
    return offline;
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    const copy = parseUserInfo(serializeUserInfo(info, this.limits.maxUserInfoBytes));
    return (await this.#call({ type: MessageType.UPDATE_INFO, userId, info: copy })) as boolean;
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.#assertOpen();
    return ((await this.#call({ type: MessageType.USER_INFO, userId })) as UserInfo | null) ?? undefined;
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    return (await this.#call({ type: MessageType.JOIN, connectionId, room })) as boolean;
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    return (await this.#call({ type: MessageType.LEAVE, connectionId, room })) as boolean;
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    return (await this.#call({ type: MessageType.IS_USER_IN_ROOM, userId, room })) as boolean;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.#assertOpen();
    return (await this.#call({ type: MessageType.ROOM_USERS_COUNT, room })) as number;
  }

  async *roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.#assertOpen();
    const entries = (await this.#call({ type: MessageType.ROOM_USERS, room })) as UserEntry[];
    yield* inPages(entries.map(fromEntry), options.pageSize);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.#assertOpen();
    return (await this.#call({ type: MessageType.IS_USER_CONNECTED, userId })) as boolean;
  }

  async usersCount(): Promise<number> {
    this.#assertOpen();
    return (await this.#call({ type: MessageType.USERS_COUNT })) as number;
  }

  async usersList(): Promise<string[]> {
    this.#assertOpen();
    return ((await this.#call({ type: MessageType.USERS })) as UserEntry[]).map(([userId]) => userId);
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.#assertOpen();
    const entries = (await this.#call({ type: MessageType.USERS })) as UserEntry[];
    yield* inPages(entries.map(fromEntry), options.pageSize);
  }

  onTransition(listener: TransitionListener): () => void {
    return this.#events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.#events.onError(listener);
  }

  /**
   * Removes this store's connections on the primary and announces, here, the
   * room leaves and offline users this causes. Rejects with
   * `StoreUnavailableError` (after releasing everything) if the primary does not answer.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    let transitions: Transition[] = [];
    let failure: unknown;
    try {
      if (!this.#gone) {
        const closed = this.#call({ type: MessageType.CLOSE });
        this.#closeSent = true;
        this.#closed = true;
        transitions = (await closed) as Transition[];
      }
    } catch (error) {
      failure = error;
    } finally {
      this.#closed = true;
    }
    for (const transition of transitions) this.#events.announce(transition);
    for (const detach of this.#detach) detach();
    this.#events.clear();
    if (failure !== undefined) throw failure;
  }

  /** Queues a call for this turn's batch and waits for its reply; the batch leaves once the turn ends. */
  #call(body: RequestBody): Promise<ReplyValue> {
    if (this.#gone) return Promise.reject(new StoreUnavailableError("the cluster primary cannot be reached (its IPC channel is closed)"));
    const id = this.#enqueue(body);
    return new Promise((resolve, reject) => this.#pending.set(id, { batch: undefined, resolve, reject }));
  }

  /** Queues a request for this turn's batch. */
  #enqueue(body: RequestBody): number {
    const id = ++this.#nextId;
    if (this.#outbox.length === 0) setImmediate(() => this.#flush());
    this.#outbox.push({ ...body, id } as Request);
    return id;
  }

  /** Sends what this turn queued, in one envelope, with one deadline for all of it. */
  #flush(): void {
    const requests = this.#outbox;
    this.#outbox = [];
    if (requests.length === 0) return;
    const batch: Batch = { timer: undefined, waiting: 0 };
    for (const request of requests) {
      const pending = this.#pending.get(request.id);
      if (pending) {
        pending.batch = batch;
        batch.waiting++;
      }
    }
    this.stats.calls += requests.length;
    const sent = this.#channel.send({ source: MESSAGE_SOURCE, store: this.id, requests });
    if (!sent) {
      this.#failBatch(batch, new StoreUnavailableError("the cluster primary cannot be reached (its IPC channel is closed)"));
      return;
    }
    this.stats.messagesSent++;
    if (batch.waiting > 0) {
      batch.timer = setTimeout(() => {
        debug("%d call(s) got no answer within %d ms", batch.waiting, this.#timeoutMs);
        this.#failBatch(
          batch,
          new StoreUnavailableError(`the cluster primary did not answer within ${this.#timeoutMs} ms (is setupPrimary() from @presence/cluster running?)`),
        );
      }, this.#timeoutMs);
    }
  }

  #failBatch(batch: Batch, error: Error): void {
    clearTimeout(batch.timer);
    for (const [id, pending] of this.#pending) {
      if (pending.batch !== batch) continue;
      this.#pending.delete(id);
      pending.reject(error);
    }
    batch.waiting = 0;
  }

  #receive(envelope: PrimaryEnvelope): void {
    if (envelope.store !== this.id) return; // another store of this worker
    this.stats.messagesReceived++;
    for (const message of envelope.messages) {
      if (message.type === MessageType.ANNOUNCE) {
        // once CLOSE is on its way the primary gives unacknowledged hand-offs to another store
        if (this.#closeSent) continue;
        debug("announcing %d transition(s) left by a dead worker", message.transitions.length);
        for (const transition of message.transitions) this.#events.announce(transition);
        // acknowledged at once, not with the next batch: right behind the broadcasts the announcing
        // just sent on the same channel, so a death loses both or neither (no second announcement)
        const ack = { source: MESSAGE_SOURCE, store: this.id, requests: [{ id: ++this.#nextId, type: MessageType.ANNOUNCED, handoffId: message.handoffId }] };
        if (this.#channel.send(ack as WorkerEnvelope)) this.stats.messagesSent++;
        this.stats.calls++;
        continue;
      }
      const pending = this.#pending.get(message.id);
      if (!pending) continue; // answered after its deadline: already rejected
      this.#pending.delete(message.id);
      if (pending.batch && --pending.batch.waiting === 0) clearTimeout(pending.batch.timer);
      if ("error" in message) pending.reject(fromWireError(message.error));
      else pending.resolve(message.value);
    }
  }

  #primaryGone(): void {
    if (this.#gone) return;
    this.#gone = true;
    const error = new StoreUnavailableError("the cluster primary cannot be reached (its IPC channel is closed)");
    debug("the primary is gone: %d call(s) fail", this.#pending.size);
    for (const pending of this.#pending.values()) {
      clearTimeout(pending.batch?.timer);
      pending.reject(error);
    }
    this.#pending.clear();
    this.#events.error(error);
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createClusterStore(options?: ClusterStoreOptions): ClusterStore {
  return new ClusterStore(options);
}
