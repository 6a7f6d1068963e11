import { randomUUID } from "node:crypto";
import cluster from "node:cluster";
import {
  InvalidOptionError,
  StoreBase,
  StoreUnavailableError,
  assertConnectionId,
  assertRoom,
  assertUserId,
  assertUserIds,
  inPages,
  parseUserInfo,
  resolveLimits,
  serializeUserInfo,
  type PresenceLimits,
  type PresenceStore,
  type UserInfo,
  type UserPresence,
  type UserState,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { WorkerChannel } from "./channel";
import { ClusterSetupError, fromWireError } from "./errors";
import { clusterWorkerChannel } from "./ipc";
import { machineTime } from "./machine-time";
import {
  DECIDING_CALLS,
  MESSAGE_SOURCE,
  MessageType,
  fromEntry,
  type Ack,
  type Announce,
  type PrimaryEnvelope,
  type Reply,
  type ReplyValue,
  type Request,
  type UserEntry,
  type WireError,
} from "./messages";
import { assertKnownOptions, definedLimits, durationOption, limitOptions } from "./options";
import { LIMITS_ENV, PRIMARY_ENV, type ChannelStats } from "./primary";

const debug = createDebug("presence:cluster");

export interface ClusterStoreOptions extends Partial<PresenceLimits> {
  /**
   * How long a call waits for the primary's answer, in ms, before it rejects
   * with `StoreUnavailableError`. An answer that comes later is still
   * announced, and the same call made again (the binding's retry) gets it.
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

const STORE_OPTIONS = ["timeoutMs", "channel", "maxUserIdBytes", "maxRoomBytes", "maxUserInfoBytes"] as const;

/** How long an answer that came after its caller gave up waits for the same call to be made again. */
const LATE_ANSWER_MS = 30_000;

/** The most calls kept waiting for an answer after their caller gave up, and the most late answers kept; the oldest go first. */
const MAX_UNCLAIMED = 10_000;

type RequestBody = Request extends infer R ? (R extends Request ? Omit<R, "id"> : never) : never;

interface Batch {
  timer: NodeJS.Timeout | undefined;
  /** Calls of this batch whose callers still wait. */
  waiting: Set<Call>;
}

interface Call {
  id: number;
  body: RequestBody;
  /** A deciding call's key (its type and arguments): the same call made after its caller gave up reuses its id. */
  key: string | undefined;
  /** Its caller, until answered or given up. */
  waiter: { resolve: (value: ReplyValue) => void; reject: (error: Error) => void } | undefined;
  batch: Batch | undefined;
}

type Answer = { value: ReplyValue } | { error: WireError };

/** The limits `setupPrimary()` published to the workers' environment. */
function primaryLimits(): Partial<PresenceLimits> {
  try {
    return definedLimits(JSON.parse(process.env[LIMITS_ENV] ?? "{}") as Partial<PresenceLimits>);
  } catch {
    return {};
  }
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

const unreachable = () => new StoreUnavailableError("the cluster primary cannot be reached (its IPC channel is closed)");

/**
 * A cluster worker's presence store: every call goes to the primary, which
 * keeps the one truth and decides each transition exactly once, with its
 * version. The transitions a call decided come back with its answer and are
 * announced here (`onTransition`) before the call resolves; those no call's
 * store could announce (a dead or stalled worker's) are handed to a live
 * store. Calls made in one event-loop turn travel together in one IPC
 * message, and come back in one.
 */
export class ClusterStore extends StoreBase implements PresenceStore {
  /** This store's id on the primary. */
  readonly id = randomUUID();
  readonly limits: PresenceLimits;
  /** IPC messages and calls, to check what a load costs. */
  readonly stats: ChannelStats = { messagesSent: 0, messagesReceived: 0, calls: 0 };
  readonly #timeoutMs: number;
  readonly #channel: WorkerChannel;
  /** Calls sent and not answered yet, by request id: waited for, or given up by their caller. */
  readonly #calls = new Map<number, Call>();
  /** Deciding calls given up by their caller, by key: made again, they reuse their id. */
  readonly #unanswered = new Map<string, Call>();
  /** Answers that came after their caller gave up, by key, for the same call made again. */
  readonly #late = new Map<string, { answer: Answer; at: number }>();
  readonly #detach: Array<() => void>;
  #outbox: Call[] = [];
  #nextId = 0;
  /** Set when the primary cannot be reached any more. */
  #gone = false;

  constructor(options: ClusterStoreOptions = {}) {
    super();
    const owner = "ClusterStore";
    assertKnownOptions(owner, options, STORE_OPTIONS);
    this.#timeoutMs = durationOption(owner, "timeoutMs", options.timeoutMs, 5000);
    const { channel } = options;
    if (channel !== undefined && (typeof channel !== "object" || channel === null || typeof channel.send !== "function" || typeof channel.onMessage !== "function" || typeof channel.onGone !== "function")) {
      throw new InvalidOptionError(owner, "channel", "must be a WorkerChannel (send, onMessage, onGone)");
    }
    this.#channel = channel ?? defaultChannel();
    this.limits = resolveLimits({ ...(channel ? {} : primaryLimits()), ...limitOptions(owner, options) });
    this.#detach = [
      this.#channel.onMessage((envelope) => this.#receive(envelope)),
      this.#channel.onGone(() => this.#primaryGone()),
    ];
    this.#call({ type: MessageType.OPEN }).catch((error: unknown) => this.events.error(error));
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.limits.maxUserIdBytes);
    // a copy taken now: the caller may change its object before the batch leaves
    const copy = info === undefined ? undefined : parseUserInfo(serializeUserInfo(info, this.limits.maxUserInfoBytes));
    return (await this.#call(copy === undefined ? { type: MessageType.CONNECT, connectionId, userId } : { type: MessageType.CONNECT, connectionId, userId, info: copy })) as boolean;
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.assertOpen();
    return (await this.#call({ type: MessageType.DISCONNECT, connectionId })) as boolean;
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.assertOpen();
    assertUserId(userId, this.limits.maxUserIdBytes);
    const copy = parseUserInfo(serializeUserInfo(info, this.limits.maxUserInfoBytes));
    return (await this.#call({ type: MessageType.UPDATE_INFO, userId, info: copy })) as boolean;
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.assertOpen();
    return ((await this.#call({ type: MessageType.USER_INFO, userId })) as UserInfo | null) ?? undefined;
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    return (await this.#call({ type: MessageType.JOIN, connectionId, room })) as boolean;
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    assertRoom(room, this.limits.maxRoomBytes);
    return (await this.#call({ type: MessageType.LEAVE, connectionId, room })) as boolean;
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.assertOpen();
    return (await this.#call({ type: MessageType.IS_USER_IN_ROOM, userId, room })) as boolean;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.assertOpen();
    return (await this.#call({ type: MessageType.ROOM_USERS_COUNT, room })) as number;
  }

  async *roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.assertOpen();
    const entries = (await this.#call({ type: MessageType.ROOM_USERS, room })) as UserEntry[];
    yield* inPages(entries.map(fromEntry), options.pageSize);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.assertOpen();
    return (await this.#call({ type: MessageType.IS_USER_CONNECTED, userId })) as boolean;
  }

  /** Read by the primary, the decider, so each state is as of the primary's current version. */
  async userStates(userIds: readonly string[]): Promise<UserState[]> {
    this.assertOpen();
    assertUserIds(userIds, this.limits.maxUserIdBytes);
    return (await this.#call({ type: MessageType.USER_STATES, userIds })) as UserState[];
  }

  async usersCount(): Promise<number> {
    this.assertOpen();
    return (await this.#call({ type: MessageType.USERS_COUNT })) as number;
  }

  async usersList(): Promise<string[]> {
    this.assertOpen();
    return ((await this.#call({ type: MessageType.USERS })) as UserEntry[]).map(([userId]) => userId);
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    this.assertOpen();
    const entries = (await this.#call({ type: MessageType.USERS })) as UserEntry[];
    yield* inPages(entries.map(fromEntry), options.pageSize);
  }

  /**
   * Tells the primary this store is done. When it is the last store, its
   * connections are removed at once and the room leaves and offline users
   * this causes are announced here before `close()` resolves; otherwise they
   * stay counted for the primary's leave grace, and another store announces
   * those still offline when it ends. Rejects with `StoreUnavailableError`
   * (after releasing everything) if the primary does not answer.
   */
  protected async shutdown(): Promise<void> {
    try {
      if (!this.#gone) await this.#call({ type: MessageType.CLOSE });
    } finally {
      for (const detach of this.#detach) detach();
    }
  }

  /** Queues a call for this turn's batch and waits for its answer; the batch leaves once the turn ends. */
  #call(body: RequestBody): Promise<ReplyValue> {
    if (this.#gone) return Promise.reject(unreachable());
    const key = DECIDING_CALLS.has(body.type) ? JSON.stringify(body) : undefined;
    if (key !== undefined) {
      const late = this.#late.get(key);
      if (late) {
        this.#late.delete(key);
        if (machineTime() - late.at < LATE_ANSWER_MS) {
          debug("a call made again gets the answer that came after its first caller gave up");
          return "error" in late.answer ? Promise.reject(fromWireError(late.answer.error)) : Promise.resolve(late.answer.value);
        }
      }
    }
    // made again while its first try is unanswered: the same id, so that the primary answers from its record
    const again = key === undefined ? undefined : this.#unanswered.get(key);
    if (again) this.#unanswered.delete(key!);
    const call: Call = again ?? { id: ++this.#nextId, body, key, waiter: undefined, batch: undefined };
    this.#calls.set(call.id, call);
    return new Promise((resolve, reject) => {
      call.waiter = { resolve, reject };
      if (this.#outbox.length === 0) setImmediate(() => this.#flush());
      this.#outbox.push(call);
    });
  }

  /** Sends what this turn queued, in one envelope, with one deadline for all of it. */
  #flush(): void {
    const calls = this.#outbox;
    this.#outbox = [];
    if (calls.length === 0) return;
    const batch: Batch = { timer: undefined, waiting: new Set(calls) };
    for (const call of calls) call.batch = batch;
    this.stats.calls += calls.length;
    const requests = calls.map((call) => ({ ...call.body, id: call.id }) as Request);
    if (!this.#channel.send({ source: MESSAGE_SOURCE, store: this.id, requests })) {
      for (const call of calls) this.#calls.delete(call.id);
      this.#fail(batch, unreachable(), false);
      return;
    }
    this.stats.messagesSent++;
    batch.timer = setTimeout(() => {
      // after the channel is read: an answer that is already here is no timeout, however late this timer ran
      setImmediate(() => {
        if (batch.waiting.size === 0) return;
        debug("%d call(s) got no answer within %d ms", batch.waiting.size, this.#timeoutMs);
        const error = new StoreUnavailableError(`the cluster primary did not answer within ${this.#timeoutMs} ms (is setupPrimary() from @presence/cluster running?)`);
        this.#fail(batch, error, true);
      });
    }, this.#timeoutMs);
  }

  /** Rejects the callers still waiting in a batch; with `keep`, their deciding calls wait on for an answer (announced when it comes). */
  #fail(batch: Batch, error: Error, keep: boolean): void {
    clearTimeout(batch.timer);
    for (const call of batch.waiting) {
      const waiter = call.waiter;
      call.waiter = undefined;
      call.batch = undefined;
      if (keep && call.key !== undefined) this.#keepUnanswered(call);
      else this.#calls.delete(call.id);
      waiter?.reject(error);
    }
    batch.waiting.clear();
  }

  #keepUnanswered(call: Call): void {
    this.#unanswered.set(call.key!, call);
    if (this.#unanswered.size > MAX_UNCLAIMED) {
      const [key, oldest] = this.#unanswered.entries().next().value!;
      this.#unanswered.delete(key);
      this.#calls.delete(oldest.id);
    }
  }

  #receive(envelope: PrimaryEnvelope): void {
    if (envelope.store !== this.id) return; // another store of this worker
    this.stats.messagesReceived++;
    // past the deadline the primary hands these to another store: announcing them here too would announce them twice
    const { deadline, messages } = envelope;
    const inTime = () => deadline === undefined || machineTime() < deadline;
    for (let i = 0; i < messages.length; ) {
      const message = messages[i]!;
      if (message.type === MessageType.ANNOUNCE) {
        this.#announceHanded(message, inTime);
        i++;
        continue;
      }
      let end = i + 1;
      while (end < messages.length && messages[end]!.type === MessageType.REPLY) end++;
      this.#answerRun(messages.slice(i, end) as Reply[], inTime());
      i = end;
    }
  }

  /**
   * Replies in a row: their transitions announced, then their callers resume
   * (their promises settle in a later microtask, after the acknowledgement left).
   */
  #answerRun(replies: Reply[], inTime: boolean): void {
    const first = replies.find((reply) => reply.assignment !== undefined && (reply.transitions?.length ?? 0) > 0);
    // the word before the first announcement: were this worker to die now, the primary could tell whether it went out
    if (inTime && first) this.#acknowledge([{ assignment: first.assignment!, announced: 0, final: false, starting: true }]);
    const acks: Ack[] = [];
    for (const reply of replies) {
      if (reply.assignment !== undefined) {
        const transitions = reply.transitions ?? [];
        if (inTime) for (const transition of transitions) this.events.announce(transition);
        acks.push({ assignment: reply.assignment, announced: inTime ? transitions.length : 0, final: true });
      }
      this.#settle(reply, reply.assignment === undefined || inTime);
    }
    if (acks.length > 0) this.#acknowledge(acks);
  }

  /** Settles the call a reply answers; `announced`: its transitions were announced here. */
  #settle(reply: Reply, announced: boolean): void {
    const call = this.#calls.get(reply.id);
    if (!call) return; // a second answer to a call made again: the first settled it
    this.#calls.delete(call.id);
    if (call.key !== undefined && this.#unanswered.get(call.key) === call) this.#unanswered.delete(call.key);
    call.batch?.waiting.delete(call);
    if (call.batch?.waiting.size === 0) clearTimeout(call.batch.timer);
    const answer: Answer = "error" in reply ? { error: reply.error } : { value: reply.value };
    const waiter = call.waiter;
    if (waiter && announced) {
      if ("error" in answer) waiter.reject(fromWireError(answer.error));
      else waiter.resolve(answer.value);
      return;
    }
    if (call.key !== undefined) {
      // nobody waits for it (or its transitions go through another store): kept for the same call made again
      this.#late.set(call.key, { answer, at: machineTime() });
      if (this.#late.size > MAX_UNCLAIMED) this.#late.delete(this.#late.keys().next().value!);
    }
    waiter?.reject(new StoreUnavailableError("the cluster primary's answer came after its deadline to announce it (this worker was stalled)"));
  }

  /**
   * Transitions handed to this store, each announced right after a word that
   * it is about to be: a death midway hands on only the ones not announced.
   */
  #announceHanded(message: Announce, inTime: () => boolean): void {
    const { assignment, transitions } = message;
    debug("announcing %d transition(s) handed over by the primary", transitions.length);
    for (let i = 0; i < transitions.length; i++) {
      if (!inTime()) {
        this.#acknowledge([{ assignment, announced: i, final: true }]);
        return;
      }
      this.#acknowledge([{ assignment, announced: i, final: false, starting: true }]);
      this.events.announce(transitions[i]!);
    }
    this.#acknowledge([{ assignment, announced: transitions.length, final: true }]);
  }

  #acknowledge(acks: Ack[]): void {
    if (this.#channel.send({ source: MESSAGE_SOURCE, store: this.id, requests: [], acks })) this.stats.messagesSent++;
  }

  #primaryGone(): void {
    if (this.#gone) return;
    this.#gone = true;
    const error = unreachable();
    debug("the primary is gone: %d call(s) fail", this.#calls.size);
    for (const call of this.#calls.values()) {
      clearTimeout(call.batch?.timer);
      call.waiter?.reject(error);
    }
    this.#calls.clear();
    this.#unanswered.clear();
    this.#late.clear();
    this.events.error(error);
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createClusterStore(options?: ClusterStoreOptions): ClusterStore {
  return new ClusterStore(options);
}
