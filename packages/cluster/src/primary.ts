import cluster from "node:cluster";
import { LocalPresence, type PresenceLimits, type Transition } from "@presence/core";
import createDebug from "debug";
import { Announcements } from "./announcements";
import type { PrimaryChannel } from "./channel";
import { ClusterSetupError, toWireError } from "./errors";
import { clusterPrimaryChannel } from "./ipc";
import { DECIDING_CALLS, MESSAGE_SOURCE, MessageType, toEntry, type Announce, type Reply, type ReplyValue, type Request, type WorkerEnvelope } from "./messages";
import { assertKnownOptions, durationOption, limitOptions } from "./options";

const debug = createDebug("presence:cluster:primary");

/** Set by `setupPrimary()` before workers are forked; a worker's store refuses to start without it. */
export const PRIMARY_ENV = "PRESENCE_CLUSTER_PRIMARY";

/** The primary's input limits as JSON, so that the workers' stores check the same ones by default. */
export const LIMITS_ENV = "PRESENCE_CLUSTER_LIMITS";

/** The binding's default leave delay (`leaveDelayMs` of `@presence/socketio`): a worker's end is hidden as long as a tab's. */
export const DEFAULT_LEAVE_GRACE_MS = 2000;

export const DEFAULT_ANNOUNCE_TIMEOUT_MS = 1000;

/** The most recorded answers kept per store, for retries that carry the same request id; the oldest go first. */
const MAX_ANSWERS = 1024;

/** The primary's options: the input limits it enforces (it is the authority; workers check the same limits early), and its timings. */
export interface PrimaryOptions extends Partial<PresenceLimits> {
  /**
   * How long, in ms, the connections of a store that closed, or of a worker
   * that died, stay counted before they are removed. A user who is back on
   * another worker within it is never announced leaving, so a rolling
   * restart is silent; the others are announced once, when it ends. When
   * the closing or dying store is the last one, it applies at once. The
   * default is the binding's default leave delay.
   * @default 2000
   */
  leaveGraceMs?: number;
  /**
   * How long, in ms, a store has to announce the transitions it is handed
   * (with a call's reply, or a dead store's leaves). Past it, a store that
   * was stopped or stalled announces none of them, and they go to another
   * live store.
   * @default 1000
   */
  announceTimeoutMs?: number;
}

const PRIMARY_OPTIONS = ["maxUserIdBytes", "maxRoomBytes", "maxUserInfoBytes", "leaveGraceMs", "announceTimeoutMs"] as const;

/** Counters that show how much IPC the protocol costs. */
export interface ChannelStats {
  /** IPC messages (envelopes) sent. */
  messagesSent: number;
  /** IPC messages (envelopes) received. */
  messagesReceived: number;
  /** Calls carried by those messages. */
  calls: number;
}

/** One worker's store, as the primary knows it. */
interface Session {
  id: string;
  peer: string;
  /** open: takes calls and announcements; closing: its CLOSE came; gone: its worker died. */
  state: "open" | "closing" | "gone";
  /** The connections this store counted. */
  connections: Set<string>;
  /** Answers to its deciding calls, by request id: a retry that carries the same id gets this, and is not applied again. */
  answers: Map<number, ReplyValue>;
  /** The highest request id seen: a deciding call at or below it is a retry. */
  lastRequest: number;
  /** The id of its CLOSE, once it came. */
  closeRequest: number | undefined;
  /** It let an announcement deadline pass: handed nothing new until it is heard from. */
  stalled: boolean;
  /** When it was last heard from, as a tick: the store heard last is the likeliest to be alive. */
  heard: number;
  /** While its connections wait out the leave grace. */
  grace: NodeJS.Timeout | undefined;
}

/**
 * The one decider of a cluster: applies every worker's calls, in arrival
 * order, to one `LocalPresence` (its version counter orders every
 * transition), has each transition announced once by one live store, and
 * removes the connections of stores that close or die after the leave grace.
 */
export class PresencePrimary {
  readonly presence: LocalPresence;
  readonly stats: ChannelStats = { messagesSent: 0, messagesReceived: 0, calls: 0 };
  readonly #channel: PrimaryChannel;
  readonly #leaveGraceMs: number;
  readonly #announcements: Announcements;
  readonly #sessions = new Map<string, Session>();
  /** The worker of every store that may still be sent to. */
  readonly #peerOf = new Map<string, string>();
  readonly #ownerOf = new Map<string, Session>();
  /** Workers gone for good: a late message from one of them is dropped. */
  readonly #gonePeers = new Set<string>();
  /** How many messages each worker sent (ours and the others on its channel): where in its stream an acknowledgement came. */
  readonly #sent = new Map<string, number>();
  #tick = 0;
  #closed = false;

  constructor(channel: PrimaryChannel, options: PrimaryOptions = {}) {
    const { limits, leaveGraceMs, announceTimeoutMs } = resolvePrimaryOptions("PresencePrimary", options);
    this.#leaveGraceMs = leaveGraceMs;
    this.presence = new LocalPresence(limits);
    this.#channel = channel;
    this.#announcements = new Announcements(
      {
        announcer: () => this.#announcer(),
        send: (store, messages, deadline) => this.#send(store, messages, deadline),
        stalled: (store) => {
          const session = this.#sessions.get(store);
          if (session) session.stalled = true;
        },
      },
      announceTimeoutMs,
    );
    channel.onMessage((peer, envelope) => this.#receive(peer, envelope));
    channel.onPeerGone((peer) => this.#peerGone(peer));
    channel.onOtherMessage?.((peer) => void this.#count(peer));
  }

  /** Stores currently open across the workers. */
  get storesCount(): number {
    let open = 0;
    for (const session of this.#sessions.values()) if (session.state === "open") open++;
    return open;
  }

  /** Decided transitions (and replies waiting for them) that no store has announced yet. */
  get pendingAnnouncements(): number {
    return this.#announcements.size;
  }

  /** Transitions given to another store to announce because the store they were handed to died, or let its deadline pass. */
  get reassigned(): number {
    return this.#announcements.reassigned;
  }

  /** Stores (closed, or of dead workers) whose connections are still counted, waiting out the leave grace. */
  get storesInGrace(): number {
    let waiting = 0;
    for (const session of this.#sessions.values()) if (session.grace) waiting++;
    return waiting;
  }

  /** Stops listening to the workers; pending graces and deadlines are dropped. */
  close(): void {
    this.#closed = true;
    for (const session of this.#sessions.values()) clearTimeout(session.grace);
    this.#announcements.close();
    this.#channel.close();
  }

  /** Counts a message of a worker; returns its number. */
  #count(peer: string): number {
    const at = (this.#sent.get(peer) ?? 0) + 1;
    this.#sent.set(peer, at);
    return at;
  }

  #receive(peer: string, envelope: WorkerEnvelope): void {
    if (this.#gonePeers.has(peer) || this.#closed) return;
    const at = this.#count(peer);
    this.stats.messagesReceived++;
    const storeId = envelope.store;
    let session = this.#sessions.get(storeId);
    if (!session && envelope.requests.some((request) => request.type !== MessageType.CLOSE) && !this.#peerOf.has(storeId)) {
      session = { id: storeId, peer, state: "open", connections: new Set(), answers: new Map(), lastRequest: 0, closeRequest: undefined, stalled: false, heard: 0, grace: undefined };
      this.#sessions.set(storeId, session);
      this.#peerOf.set(storeId, peer);
      debug("store %s opened on worker %s", storeId, peer);
    }
    if (session) {
      session.stalled = false;
      session.heard = ++this.#tick;
    }
    for (const ack of envelope.acks ?? []) {
      const replyId = this.#announcements.acknowledge(storeId, ack, at);
      if (replyId !== undefined) session?.answers.delete(replyId); // its store has the answer: no retry will ask again
    }
    const replies: Array<Reply | Announce> = [];
    for (const request of envelope.requests) {
      this.stats.calls++;
      if (session?.state === "open") this.#request(session, request, replies);
      else if (request.type === MessageType.CLOSE) replies.push({ type: MessageType.REPLY, id: request.id, value: true }); // already closed, or never opened
      else replies.push({ type: MessageType.REPLY, id: request.id, error: { code: "STORE_CLOSED", message: "the presence store is closed" } });
    }
    if (this.#peerOf.has(storeId)) {
      this.#announcements.pump(replies.length > 0 ? new Map([[storeId, replies]]) : undefined);
    } else {
      if (replies.length > 0) this.#sendTo(peer, storeId, replies, undefined);
      this.#announcements.pump();
    }
  }

  #request(session: Session, request: Request, replies: Array<Reply | Announce>): void {
    const { id } = request;
    if (request.type === MessageType.CLOSE) return this.#close(session, id);
    const deciding = DECIDING_CALLS.has(request.type);
    if (deciding && id <= session.lastRequest) {
      // a retry whose first try was applied: it gets the first answer, which is on its way unless it waits for an announcement
      const answer = session.answers.get(id);
      if (answer !== undefined) {
        if (!this.#announcements.holds(session.id, id)) replies.push({ type: MessageType.REPLY, id, value: answer });
        return;
      }
      // no record: it decided nothing (or long ago), and applying it again changes nothing (calls are idempotent per connection)
    }
    session.lastRequest = Math.max(session.lastRequest, id);
    let decided: { value: ReplyValue; transitions: Transition[] };
    try {
      decided = this.#apply(session, request);
    } catch (error) {
      replies.push({ type: MessageType.REPLY, id, error: toWireError(error) });
      return;
    }
    const reply: Reply = { type: MessageType.REPLY, id, value: decided.value };
    if (deciding) {
      session.answers.set(id, decided.value);
      if (session.answers.size > MAX_ANSWERS) session.answers.delete(session.answers.keys().next().value!);
    }
    if (decided.transitions.length > 0) this.#announcements.addReply(session.id, reply, decided.transitions);
    else replies.push(reply);
  }

  #apply(session: Session, request: Request): { value: ReplyValue; transitions: Transition[] } {
    const presence = this.presence;
    const read = (value: ReplyValue) => ({ value, transitions: [] });
    const decided = (transitions: Transition[], value = transitions.length > 0) => ({ value, transitions });
    switch (request.type) {
      case MessageType.OPEN:
      case MessageType.CLOSE:
        return read(true);
      case MessageType.CONNECT: {
        const transitions = presence.connect(request.connectionId, request.userId, request.info);
        // the connection is this store's now (a recovered connection may come back through another worker)
        const owner = this.#ownerOf.get(request.connectionId);
        if (owner !== session) {
          owner?.connections.delete(request.connectionId);
          session.connections.add(request.connectionId);
          this.#ownerOf.set(request.connectionId, session);
        }
        return decided(transitions);
      }
      case MessageType.DISCONNECT: {
        this.#ownerOf.get(request.connectionId)?.connections.delete(request.connectionId);
        this.#ownerOf.delete(request.connectionId);
        const { transitions } = presence.disconnect(request.connectionId);
        return decided(transitions, transitions.some((transition) => transition.type === "disconnected"));
      }
      case MessageType.JOIN:
        return decided(presence.join(request.connectionId, request.room));
      case MessageType.LEAVE:
        return decided(presence.leave(request.connectionId, request.room));
      case MessageType.UPDATE_INFO:
        return decided(presence.updateInfo(request.userId, request.info));
      case MessageType.USER_INFO:
        return read(presence.info(request.userId) ?? null);
      case MessageType.IS_USER_CONNECTED:
        return read(presence.isOnline(request.userId));
      case MessageType.USERS_COUNT:
        return read(presence.usersCount);
      case MessageType.USERS:
        return read(presence.users().map(toEntry));
      case MessageType.IS_USER_IN_ROOM:
        return read(presence.isInRoom(request.userId, request.room));
      case MessageType.ROOM_USERS_COUNT:
        return read(presence.roomUsersCount(request.room));
      case MessageType.ROOM_USERS:
        return read(presence.roomUsers(request.room).map(toEntry));
      case MessageType.USER_STATES:
        return read(request.userIds.map((userId) => presence.state(userId)));
    }
  }

  /**
   * A store closes. Its connections wait out the leave grace, unless it is
   * the last store: then they (and every other store's still waiting) go at
   * once, announced by this store before its close resolves.
   */
  #close(session: Session, requestId: number): void {
    debug("store %s on worker %s closes", session.id, session.peer);
    session.state = "closing";
    session.closeRequest = requestId;
    if (this.#live().length === 0) {
      const transitions: Transition[] = [];
      for (const waiting of [...this.#sessions.values()]) if (waiting.grace) transitions.push(...this.#retire(waiting));
      transitions.push(...this.#retire(session));
      this.#announcements.addHandoff(transitions, session.id);
    } else {
      this.#startGrace(session);
    }
    // after everything this store was handed: it announces those before its close resolves
    this.#announcements.addReply(session.id, { type: MessageType.REPLY, id: requestId, value: true }, [], true);
  }

  #peerGone(peer: string): void {
    if (this.#gonePeers.has(peer) || this.#closed) return;
    this.#gonePeers.add(peer);
    const last = this.#sent.get(peer) ?? 0;
    this.#sent.delete(peer);
    const wroteAfter = (at: number) => last > at;
    for (const [store, of] of this.#peerOf) if (of === peer) this.#peerOf.delete(store);
    for (const session of [...this.#sessions.values()]) {
      if (session.peer !== peer) continue;
      this.#announcements.storeGone(session.id, wroteAfter);
      session.answers.clear();
      const wasOpen = session.state === "open";
      session.state = "gone";
      if (!wasOpen) continue; // closed before: its grace runs already
      debug("worker %s gone: store %s leaves %d connection(s)", peer, session.id, session.connections.size);
      if (this.#live().length === 0) this.#announcements.addHandoff(this.#retire(session)); // the last store: no grace, the next store announces
      else this.#startGrace(session);
    }
    this.#announcements.pump();
  }

  /** Keeps a store's connections counted for the leave grace, then removes them and has a live store announce what that changes. */
  #startGrace(session: Session): void {
    if (this.#leaveGraceMs === 0) {
      this.#announcements.addHandoff(this.#retire(session));
      return;
    }
    session.grace = setTimeout(() => {
      this.#announcements.addHandoff(this.#retire(session));
      this.#announcements.pump();
    }, this.#leaveGraceMs);
    session.grace.unref();
  }

  /** Removes a store for good: its connections, and it; returns the room leaves and offline transitions this makes. */
  #retire(session: Session): Transition[] {
    clearTimeout(session.grace);
    session.grace = undefined;
    this.#sessions.delete(session.id);
    const transitions: Transition[] = [];
    for (const connectionId of session.connections) {
      this.#ownerOf.delete(connectionId);
      transitions.push(...this.presence.disconnect(connectionId).transitions);
    }
    debug("store %s retired: %d connection(s) removed, %d transition(s)", session.id, session.connections.size, transitions.length);
    session.connections.clear();
    return transitions;
  }

  /** Open stores of live workers. */
  #live(): Session[] {
    return [...this.#sessions.values()].filter((session) => session.state === "open");
  }

  /**
   * Who announces what no call's store must: the open store heard from
   * last, one that let a deadline pass only when there is no other, and a
   * closing store only while its close has not been answered (the last store).
   */
  #announcer(): string | undefined {
    let best: Session | undefined;
    const rank = (session: Session) =>
      session.state === "open" ? (session.stalled ? 2 : 3) : session.state === "closing" && this.#announcements.holds(session.id, session.closeRequest!) ? 1 : 0;
    for (const session of this.#sessions.values()) {
      const r = rank(session);
      if (r === 0 || !this.#peerOf.has(session.id)) continue;
      if (!best || r > rank(best) || (r === rank(best) && session.heard > best.heard)) best = session;
    }
    return best?.id;
  }

  #send(store: string, messages: Array<Reply | Announce>, deadline: number | undefined): boolean {
    const peer = this.#peerOf.get(store);
    return peer !== undefined && this.#sendTo(peer, store, messages, deadline);
  }

  #sendTo(peer: string, store: string, messages: Array<Reply | Announce>, deadline: number | undefined): boolean {
    const sent = this.#channel.send(peer, deadline === undefined ? { source: MESSAGE_SOURCE, store, messages } : { source: MESSAGE_SOURCE, store, deadline, messages });
    if (sent) this.stats.messagesSent++;
    return sent;
  }
}

/** Checks the primary's options once, naming `owner` and the option in any `InvalidOptionError`. */
function resolvePrimaryOptions(owner: string, options: PrimaryOptions) {
  assertKnownOptions(owner, options, PRIMARY_OPTIONS);
  return {
    limits: limitOptions(owner, options ?? {}),
    leaveGraceMs: durationOption(owner, "leaveGraceMs", options?.leaveGraceMs, DEFAULT_LEAVE_GRACE_MS, true),
    announceTimeoutMs: durationOption(owner, "announceTimeoutMs", options?.announceTimeoutMs, DEFAULT_ANNOUNCE_TIMEOUT_MS),
  };
}

let primary: PresencePrimary | undefined;

/**
 * Starts the cluster's presence in the primary, beside sticky's
 * `setupMaster()` and the cluster adapter's `setupPrimary()`. Call it before
 * forking: it marks the environment the workers inherit, so that a worker's
 * `ClusterStore` can tell a primary is listening. Calling it again returns the
 * same primary. Throws `InvalidOptionError` for an unknown or bad option.
 */
export function setupPrimary(options: PrimaryOptions = {}): PresencePrimary {
  if (!cluster.isPrimary) {
    throw new ClusterSetupError("setupPrimary() from @presence/cluster runs in the cluster primary, not in a worker");
  }
  resolvePrimaryOptions("setupPrimary", options);
  primary ??= new PresencePrimary(clusterPrimaryChannel(), options);
  process.env[PRIMARY_ENV] = "1";
  process.env[LIMITS_ENV] = JSON.stringify(primary.presence.limits);
  return primary;
}
