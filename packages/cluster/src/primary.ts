import cluster from "node:cluster";
import { LocalPresence, type PresenceLimits, type Transition } from "@presence/core";
import createDebug from "debug";
import type { PrimaryChannel } from "./channel";
import { ClusterSetupError, toWireError } from "./errors";
import { clusterPrimaryChannel } from "./ipc";
import { MESSAGE_SOURCE, MessageType, toEntry, type Announce, type Reply, type ReplyValue, type Request, type WorkerEnvelope } from "./messages";

const debug = createDebug("presence:cluster:primary");

/** Set by `setupPrimary()` before workers are forked; a worker's store refuses to start without it. */
export const PRIMARY_ENV = "PRESENCE_CLUSTER_PRIMARY";

/** The primary's input limits as JSON, so that the workers' stores check the same ones by default. */
export const LIMITS_ENV = "PRESENCE_CLUSTER_LIMITS";

/** The primary's options: the input limits it enforces (it is the authority; workers check the same limits early). */
export type PrimaryOptions = Partial<PresenceLimits>;

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
  /** The connections this store counted, removed at once if its worker dies. */
  connections: Set<string>;
}

/** Transitions of a dead or closed store, waiting for one live store to announce them. */
interface Handoff {
  id: number;
  transitions: Transition[];
  /** The store it was sent to, until that store acknowledges it. */
  session: string | undefined;
}

/**
 * The one decider of a cluster: applies every worker's calls, in arrival
 * order, to one `LocalPresence`, so each transition happens exactly once, and
 * cleans up after workers that die.
 */
export class PresencePrimary {
  readonly presence: LocalPresence;
  readonly stats: ChannelStats = { messagesSent: 0, messagesReceived: 0, calls: 0 };
  readonly #channel: PrimaryChannel;
  readonly #sessions = new Map<string, Session>();
  readonly #ownerOf = new Map<string, Session>();
  readonly #handoffs = new Map<number, Handoff>();
  /** Workers gone for good: a late message from one of them is dropped. */
  readonly #gonePeers = new Set<string>();
  #nextHandoff = 0;
  #nextTarget = 0;

  constructor(channel: PrimaryChannel, options: PrimaryOptions = {}) {
    this.presence = new LocalPresence(options);
    this.#channel = channel;
    channel.onMessage((peer, envelope) => this.#receive(peer, envelope));
    channel.onPeerGone((peer) => this.#peerGone(peer));
  }

  /** Stores currently open across the workers. */
  get storesCount(): number {
    return this.#sessions.size;
  }

  /** Hand-offs not yet acknowledged by the store announcing them. */
  get pendingHandoffs(): number {
    return this.#handoffs.size;
  }

  /** Stops listening to the workers. */
  close(): void {
    this.#channel.close();
  }

  #receive(peer: string, envelope: WorkerEnvelope): void {
    if (this.#gonePeers.has(peer)) return;
    this.stats.messagesReceived++;
    const replies: Reply[] = [];
    let opened = false;
    for (const request of envelope.requests) {
      this.stats.calls++;
      let session = this.#sessions.get(envelope.store);
      if (!session) {
        if (request.type === MessageType.CLOSE) {
          replies.push({ type: MessageType.REPLY, id: request.id, value: [] });
          continue;
        }
        session = { id: envelope.store, peer, connections: new Set() };
        this.#sessions.set(session.id, session);
        opened = true;
        debug("store %s opened on worker %s", session.id, peer);
      }
      if (request.type === MessageType.ANNOUNCED) {
        this.#handoffs.delete(request.handoffId);
        continue;
      }
      try {
        replies.push({ type: MessageType.REPLY, id: request.id, value: this.#apply(session, request) });
      } catch (error) {
        replies.push({ type: MessageType.REPLY, id: request.id, error: toWireError(error) });
      }
    }
    if (replies.length > 0) this.#send(peer, envelope.store, replies);
    // a store that can announce: hand it what was waiting for one
    if (opened) for (const handoff of this.#handoffs.values()) if (handoff.session === undefined) this.#dispatch(handoff);
  }

  #apply(session: Session, request: Request): ReplyValue {
    const presence = this.presence;
    switch (request.type) {
      case MessageType.OPEN:
        return true;
      case MessageType.CLOSE:
        return this.#closeSession(session);
      case MessageType.CONNECT: {
        const known = presence.userOf(request.connectionId) !== undefined;
        const online = presence.connect(request.connectionId, request.userId, request.info);
        if (!known) {
          session.connections.add(request.connectionId);
          this.#ownerOf.set(request.connectionId, session);
        }
        return online;
      }
      case MessageType.DISCONNECT: {
        this.#ownerOf.get(request.connectionId)?.connections.delete(request.connectionId);
        this.#ownerOf.delete(request.connectionId);
        const { offline, left } = presence.disconnect(request.connectionId);
        return { offline, left };
      }
      case MessageType.JOIN:
        return presence.join(request.connectionId, request.room);
      case MessageType.LEAVE:
        return presence.leave(request.connectionId, request.room);
      case MessageType.UPDATE_INFO:
        return presence.updateInfo(request.userId, request.info);
      case MessageType.USER_INFO:
        return presence.info(request.userId) ?? null;
      case MessageType.IS_USER_CONNECTED:
        return presence.isOnline(request.userId);
      case MessageType.USERS_COUNT:
        return presence.usersCount;
      case MessageType.USERS:
        return presence.users().map(toEntry);
      case MessageType.IS_USER_IN_ROOM:
        return presence.isInRoom(request.userId, request.room);
      case MessageType.ROOM_USERS_COUNT:
        return presence.roomUsersCount(request.room);
      case MessageType.ROOM_USERS:
        return presence.roomUsers(request.room).map(toEntry);
      case MessageType.ANNOUNCED:
        return null;
    }
  }

  /** Removes a store's connections; returns the room leaves and offline transitions this makes. */
  #removeSession(session: Session): Transition[] {
    this.#sessions.delete(session.id);
    const left: Transition[] = [];
    const offline: Transition[] = [];
    for (const connectionId of session.connections) {
      this.#ownerOf.delete(connectionId);
      const result = this.presence.disconnect(connectionId);
      left.push(...result.left);
      if (result.offline && result.userId !== undefined) offline.push({ type: "disconnected", userId: result.userId });
    }
    session.connections.clear();
    // what it was handed but never acknowledged goes to another store
    for (const handoff of this.#handoffs.values()) {
      if (handoff.session === session.id) {
        handoff.session = undefined;
        this.#dispatch(handoff);
      }
    }
    return [...left, ...offline];
  }

  /** A store closing announces its own leaves, as `MemoryStore.close()` does. */
  #closeSession(session: Session): Transition[] {
    debug("store %s on worker %s closed", session.id, session.peer);
    return this.#removeSession(session);
  }

  #peerGone(peer: string): void {
    if (this.#gonePeers.has(peer)) return;
    this.#gonePeers.add(peer);
    for (const session of [...this.#sessions.values()]) {
      if (session.peer !== peer) continue;
      const transitions = this.#removeSession(session);
      debug("worker %s gone: store %s left %d transitions", peer, session.id, transitions.length);
      if (transitions.length === 0) continue;
      const handoff: Handoff = { id: ++this.#nextHandoff, transitions, session: undefined };
      this.#handoffs.set(handoff.id, handoff);
      this.#dispatch(handoff);
    }
  }

  /** Sends a hand-off to one live store (round robin); it waits for the next store to open if none is. */
  #dispatch(handoff: Handoff): void {
    const candidates = [...this.#sessions.values()].filter((session) => !this.#gonePeers.has(session.peer));
    for (let attempt = 0; attempt < candidates.length; attempt++) {
      const target = candidates[(this.#nextTarget++ + attempt) % candidates.length]!;
      const announce: Announce = { type: MessageType.ANNOUNCE, handoffId: handoff.id, transitions: handoff.transitions };
      if (this.#send(target.peer, target.id, [announce])) {
        handoff.session = target.id;
        debug("hand-off %d (%d transitions) sent to store %s", handoff.id, handoff.transitions.length, target.id);
        return;
      }
    }
    handoff.session = undefined;
    debug("hand-off %d waits for a live store", handoff.id);
  }

  #send(peer: string, store: string, messages: Array<Reply | Announce>): boolean {
    const sent = this.#channel.send(peer, { source: MESSAGE_SOURCE, store, messages });
    if (sent) this.stats.messagesSent++;
    return sent;
  }
}

let primary: PresencePrimary | undefined;

/**
 * Starts the cluster's presence in the primary, beside sticky's
 * `setupMaster()` and the cluster adapter's `setupPrimary()`. Call it before
 * forking: it marks the environment the workers inherit, so that a worker's
 * `ClusterStore` can tell a primary is listening. Calling it again returns the
 * same primary.
 */
export function setupPrimary(options: PrimaryOptions = {}): PresencePrimary {
  if (!cluster.isPrimary) {
    throw new ClusterSetupError("setupPrimary() from @presence/cluster runs in the cluster primary, not in a worker");
  }
  primary ??= new PresencePrimary(clusterPrimaryChannel(), options);
  process.env[PRIMARY_ENV] = "1";
  process.env[LIMITS_ENV] = JSON.stringify(primary.presence.limits);
  return primary;
}
