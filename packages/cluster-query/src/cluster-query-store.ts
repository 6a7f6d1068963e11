import { randomUUID } from "node:crypto";
import {
  DEFAULT_MAX_USER_ID_BYTES,
  StoreClosedError,
  StoreEvents,
  assertUserId,
  type ErrorListener,
  type PresenceStore,
  type TransitionListener,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";
import { MemoryStore } from "@presence/memory";
import createDebug from "debug";
import type { Namespace, Server } from "socket.io";
import { NodesUnresponsiveError } from "./errors";
import {
  MessageType,
  QUERY_EVENT,
  mergeUsers,
  type IsUserConnectedResponse,
  type QueryRequest,
  type UsersResponse,
} from "./messages";

const debug = createDebug("presence:cluster-query");

export interface ClusterQueryStoreOptions {
  /**
   * How long to wait for the other nodes, in ms. The adapters' own limit for
   * `serverSideEmitWithAck` is 5000 ms (the Redis adapter's `requestsTimeout`):
   * the exact count of missing nodes comes from the adapter, so keep this at
   * or above it.
   * @default 5500
   */
  timeoutMs?: number;
  /**
   * Resolve queries with what the answering nodes said when some did not
   * answer, instead of rejecting with `NodesUnresponsiveError`.
   * @default false
   */
  allowPartial?: boolean;
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
}

/** A query's answer, with how complete it is. */
export interface ClusterAnswer<T> {
  value: T;
  /** True when some nodes did not answer in time. */
  partial: boolean;
  /** How many nodes did not answer. */
  missingNodes: number;
}

type AckError = Error & { responses?: unknown[] };

/**
 * Presence across a cluster with no shared store: each node counts its own
 * connections in a `MemoryStore`, and queries ask every node with
 * `serverSideEmitWithAck`. Works with any adapter that supports it (the
 * cluster adapter, the Redis adapter, ...).
 *
 * Transitions are decided by asking the others too, so two nodes seeing the
 * same user at the same instant may both or neither announce it: see the README.
 */
export class ClusterQueryStore implements PresenceStore {
  readonly namespace: Namespace;
  /** This node's id in the queries' messages. */
  readonly uid = randomUUID();

  readonly #local: MemoryStore;
  readonly #events = new StoreEvents();
  readonly #timeoutMs: number;
  readonly #allowPartial: boolean;
  readonly #maxUserIdBytes: number;
  readonly #onQuery = (request: QueryRequest, ack: (response: unknown) => void) => this.#answer(request, ack);
  #requestId = 0;
  #closed = false;

  constructor(namespace: Namespace, options: ClusterQueryStoreOptions = {}) {
    this.namespace = namespace;
    this.#timeoutMs = options.timeoutMs ?? 5500;
    this.#allowPartial = options.allowPartial ?? false;
    this.#maxUserIdBytes = options.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES;
    this.#local = new MemoryStore({ maxUserIdBytes: this.#maxUserIdBytes });
    (namespace as unknown as NodeJS.EventEmitter).on(QUERY_EVENT, this.#onQuery);
  }

  async connect(connectionId: string, userId: string): Promise<boolean> {
    this.#assertOpen();
    if (!this.#local.connectSync(connectionId, userId)) return false;
    // new on this node: new to the cluster unless another node holds them
    return !(await this.#elsewhere(userId));
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.#assertOpen();
    const userId = this.#local.userOf(connectionId);
    // gone from this node: gone from the cluster unless another node holds them
    if (userId === undefined || !this.#local.disconnectSync(connectionId)) return false;
    return !(await this.#elsewhere(userId));
  }

  async isUserConnected(userId: string): Promise<boolean> {
    return (await this.isUserConnectedDetailed(userId)).value;
  }

  /** `isUserConnected`, with whether every node answered. */
  async isUserConnectedDetailed(userId: string): Promise<ClusterAnswer<boolean>> {
    this.#assertOpen();
    assertUserId(userId, this.#maxUserIdBytes);
    if (this.#local.connectionsOf(userId) > 0) return { value: true, partial: false, missingNodes: 0 };
    const answer = await this.#ask<IsUserConnectedResponse>({ type: MessageType.IS_USER_CONNECTED, userId });
    const value = answer.responses.some((response) => response.connected);
    // a "yes" from any node is the whole answer, even with others missing
    return this.#settle({ value, partial: !value && answer.missing > 0, missingNodes: value ? 0 : answer.missing, expected: answer.expected });
  }

  async usersCount(): Promise<number> {
    return (await this.snapshot()).value.length;
  }

  async usersList(): Promise<string[]> {
    return (await this.snapshot()).value.map((user) => user.userId);
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    const pageSize = Math.max(1, options.pageSize ?? 100);
    const all = (await this.snapshot()).value;
    for (let i = 0; i < all.length; i += pageSize) yield all.slice(i, i + pageSize);
  }

  /**
   * Every online user across the cluster with their connection counts, and
   * whether every node answered. With `{ allowPartial: true }` a missing node
   * marks the answer partial instead of rejecting.
   */
  async snapshot(options: { allowPartial?: boolean } = {}): Promise<ClusterAnswer<UserPresence[]>> {
    this.#assertOpen();
    const local = this.#local.snapshot().map(({ userId, connections }): [string, number] => [userId, connections]);
    const answer = await this.#ask<UsersResponse>({ type: MessageType.USERS });
    const value = mergeUsers([local, ...answer.responses.map((response) => response.users)]);
    return this.#settle(
      { value, partial: answer.missing > 0, missingNodes: answer.missing, expected: answer.expected },
      options.allowPartial,
    );
  }

  onTransition(listener: TransitionListener): () => void {
    return this.#events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.#events.onError(listener);
  }

  /** Stops answering queries and announces the users that leaving the cluster takes offline. */
  async close(): Promise<void> {
    if (this.#closed) return;
    (this.namespace as unknown as NodeJS.EventEmitter).off(QUERY_EVENT, this.#onQuery);
    const users = await this.#local.usersList();
    await this.#local.close();
    this.#closed = true;
    const gone = await Promise.all(
      users.map(async (userId) => ((await this.#elsewhere(userId)) ? undefined : userId)),
    );
    for (const userId of gone) if (userId !== undefined) this.#events.announce({ type: "disconnected", userId });
    this.#events.clear();
  }

  #answer(request: QueryRequest, ack: (response: unknown) => void): void {
    if (typeof ack !== "function" || this.#closed) return;
    const base = { uid: this.uid, requestId: request.requestId };
    switch (request.type) {
      case MessageType.IS_USER_CONNECTED:
        ack({ ...base, connected: this.#local.connectionsOf(request.userId) > 0 } satisfies IsUserConnectedResponse);
        break;
      case MessageType.USERS:
        ack({
          ...base,
          users: this.#local.snapshot().map(({ userId, connections }) => [userId, connections]),
        } satisfies UsersResponse);
        break;
    }
  }

  /** Whether any other node holds a connection of this user; a missing node counts as "no". */
  async #elsewhere(userId: string): Promise<boolean> {
    const answer = await this.#ask<IsUserConnectedResponse>({ type: MessageType.IS_USER_CONNECTED, userId });
    if (answer.missing > 0) debug("deciding the transition of %s without %d node(s)", userId, answer.missing);
    return answer.responses.some((response) => response.connected);
  }

  async #ask<R>(
    request: { type: MessageType.IS_USER_CONNECTED; userId: string } | { type: MessageType.USERS },
  ): Promise<{ responses: R[]; missing: number; expected: number }> {
    const expected = Math.max(0, (await this.namespace.adapter.serverCount()) - 1);
    if (expected === 0) return { responses: [], missing: 0, expected };
    const message = { ...request, uid: this.uid, requestId: ++this.#requestId } as QueryRequest;
    let guard: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(Object.assign(new Error("presence query timed out"), { responses: [] })), this.#timeoutMs);
    });
    try {
      const responses = await Promise.race([this.namespace.serverSideEmitWithAck(QUERY_EVENT, message), timedOut]);
      return { responses: responses as R[], missing: Math.max(0, expected - responses.length), expected };
    } catch (error) {
      const responses = ((error as AckError).responses ?? []) as R[];
      debug("query %d: %d of %d nodes answered (%s)", message.requestId, responses.length, expected, (error as Error).message);
      return { responses, missing: Math.max(1, expected - responses.length), expected };
    } finally {
      clearTimeout(guard);
    }
  }

  #settle<T>(answer: ClusterAnswer<T> & { expected: number }, allowPartial = this.#allowPartial): ClusterAnswer<T> {
    const { expected, ...result } = answer;
    if (result.partial && !allowPartial) throw new NodesUnresponsiveError(result.missingNodes, expected, result.value);
    return result;
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}

/**
 * Factory form, in the style of Socket.IO's `createAdapter()`: give it the
 * server (its main namespace) or a namespace.
 */
export function createClusterQueryStore(target: Server | Namespace, options?: ClusterQueryStoreOptions): ClusterQueryStore {
  const namespace = "of" in target ? target.of("/") : target;
  return new ClusterQueryStore(namespace, options);
}
