import {
  InvalidOptionError,
  LIMIT_NAMES,
  LocalPresence,
  StoreBase,
  assertKnownOptions,
  integerOption,
  assertUserId,
  assertUserIds,
  inPages,
  type PresenceLimits,
  type PresenceStore,
  type Transition,
  type UserInfo,
  type UserPresence,
  type UserState,
  type UsersPageOptions,
} from "@presence/core";
import createDebug from "debug";
import type { Namespace, Server } from "socket.io";
import { NodesUnresponsiveError } from "./errors";
import { MessageType, QUERY_EVENT, mergeUsers, toEntry, type HoldsAnswer, type HoldsQuestion, type QueryRequest, type QueryResponse } from "./messages";

const debug = createDebug("presence:cluster-query");

export interface ClusterQueryStoreOptions extends Partial<PresenceLimits> {
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
type Ask = { responses: QueryResponse[]; missing: number; expected: number };
/** What the other nodes hold of one user: whether they are online there, and in which of the asked rooms. */
type HeldElsewhere = { online: boolean; rooms: Set<string> };

/** No node decides alone here, so no version orders transitions across nodes: they go out unversioned (best effort). */
const unversioned = (transition: Transition): Transition => {
  const { version: _, ...rest } = transition;
  return rest as Transition;
};

/**
 * Presence across a cluster with no shared store: each node counts its own
 * connections (and room memberships, and user info) in core's `LocalPresence`, and
 * queries ask every node with `serverSideEmitWithAck`. Works with any adapter
 * that supports it (the cluster adapter, the Redis adapter, ...).
 *
 * Transitions are decided by asking the others too, so two nodes seeing the
 * same user at the same instant may both or neither announce it: see the README.
 */
export class ClusterQueryStore extends StoreBase implements PresenceStore {
  readonly namespace: Namespace;

  readonly #local: LocalPresence;
  readonly #timeoutMs: number;
  readonly #allowPartial: boolean;
  readonly #onQuery = (request: QueryRequest, ack: (response: QueryResponse) => void) => this.#answer(request, ack);

  constructor(namespace: Namespace, options: ClusterQueryStoreOptions = {}) {
    super();
    const owner = "createClusterQueryStore";
    assertKnownOptions(owner, options, [...LIMIT_NAMES, "timeoutMs", "allowPartial"]);
    if (options.allowPartial !== undefined && typeof options.allowPartial !== "boolean") {
      throw new InvalidOptionError(owner, "allowPartial", `must be a boolean, got ${typeof options.allowPartial}`);
    }
    this.namespace = namespace;
    this.#timeoutMs = integerOption(owner, "timeoutMs", options.timeoutMs, 5500, 1);
    this.#allowPartial = options.allowPartial ?? false;
    this.#local = new LocalPresence(options);
    (namespace as unknown as NodeJS.EventEmitter).on(QUERY_EVENT, this.#onQuery);
  }

  get limits(): Readonly<PresenceLimits> {
    return this.#local.limits;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    this.assertOpen();
    // new on this node: new to the cluster unless another node holds them
    const [connected] = this.#local.connect(connectionId, userId, info);
    if (!connected || (await this.#elsewhere({ type: MessageType.IS_USER_CONNECTED, userId }))) return false;
    return this.announce([unversioned(connected)], "connected");
  }

  async disconnect(connectionId: string): Promise<boolean> {
    this.assertOpen();
    const userId = this.#local.userOf(connectionId);
    if (userId === undefined) return false;
    const { transitions } = this.#local.disconnect(connectionId);
    if (transitions.length === 0) return false;
    const rooms = transitions.flatMap((transition) => (transition.type === "left" ? [transition.room] : []));
    // one question for the user and every room they left here: gone from the cluster unless another node holds them
    const [elsewhere] = await this.#heldElsewhere([[userId, rooms]]);
    const gone = transitions.filter((transition) => (transition.type === "left" ? !elsewhere!.rooms.has(transition.room) : !elsewhere!.online));
    return this.announce(gone.map(unversioned), "disconnected");
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    const [joined] = this.#local.join(connectionId, room);
    if (!joined || (await this.#elsewhere({ type: MessageType.IS_USER_IN_ROOM, userId: joined.userId, room }))) return false;
    return this.announce([unversioned(joined)], "joined");
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    this.assertOpen();
    const [left] = this.#local.leave(connectionId, room);
    if (!left || (await this.#elsewhere({ type: MessageType.IS_USER_IN_ROOM, userId: left.userId, room }))) return false;
    return this.announce([unversioned(left)], "left");
  }

  /** Updates the info on every node that holds the user. */
  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.assertOpen();
    const here = this.#local.updateInfo(userId, info).length > 0;
    const answer = await this.#ask({ type: MessageType.UPDATE_INFO, userId, info });
    if (!here && !answer.responses.some((response) => response.yes)) return false;
    return this.announce([{ type: "updated", userId, info: this.#local.info(userId) ?? info }], "updated");
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.assertOpen();
    if (this.#local.connectionsOf(userId) > 0) return this.#local.info(userId);
    const answer = await this.#ask({ type: MessageType.USER_INFO, userId });
    return answer.responses.find((response) => response.info !== undefined)?.info;
  }

  async isUserConnected(userId: string): Promise<boolean> {
    return (await this.isUserConnectedDetailed(userId)).value;
  }

  /** `isUserConnected`, with whether every node answered. */
  async isUserConnectedDetailed(userId: string): Promise<ClusterAnswer<boolean>> {
    this.assertOpen();
    assertUserId(userId, this.#local.limits.maxUserIdBytes);
    if (this.#local.connectionsOf(userId) > 0) return { value: true, partial: false, missingNodes: 0 };
    return this.#yesFromAny(await this.#ask({ type: MessageType.IS_USER_CONNECTED, userId }));
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.assertOpen();
    if (this.#local.roomConnectionsOf(userId, room) > 0) return true;
    return (this.#yesFromAny(await this.#ask({ type: MessageType.IS_USER_IN_ROOM, userId, room }))).value;
  }

  async usersCount(): Promise<number> {
    return (await this.snapshot()).value.length;
  }

  async usersList(): Promise<string[]> {
    return (await this.snapshot()).value.map((user) => user.userId);
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages((await this.snapshot()).value, options.pageSize);
  }

  /** From one snapshot of every node; unversioned, like every change this store announces. */
  async userStates(userIds: readonly string[]): Promise<UserState[]> {
    this.assertOpen();
    assertUserIds(userIds, this.#local.limits.maxUserIdBytes);
    if (userIds.length === 0) return [];
    const online = new Map((await this.snapshot()).value.map((user) => [user.userId, user]));
    return userIds.map((userId) => {
      const user = online.get(userId);
      if (!user) return { userId, online: false };
      return user.info === undefined ? { userId, online: true } : { userId, online: true, info: user.info };
    });
  }

  async roomUsersCount(room: string): Promise<number> {
    return (await this.roomSnapshot(room)).value.length;
  }

  async *roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages((await this.roomSnapshot(room)).value, options.pageSize);
  }

  /**
   * Every online user across the cluster with their connection counts and
   * info, and whether every node answered. With `{ allowPartial: true }` a
   * missing node marks the answer partial instead of rejecting.
   */
  async snapshot(options: { allowPartial?: boolean } = {}): Promise<ClusterAnswer<UserPresence[]>> {
    this.assertOpen();
    const local = this.#local.users().map(toEntry);
    return this.#merged(local, await this.#ask({ type: MessageType.USERS }), options.allowPartial);
  }

  /** A room's users across the cluster, like {@link snapshot}. */
  async roomSnapshot(room: string, options: { allowPartial?: boolean } = {}): Promise<ClusterAnswer<UserPresence[]>> {
    this.assertOpen();
    const local = this.#local.roomUsers(room).map(toEntry);
    return this.#merged(local, await this.#ask({ type: MessageType.ROOM_USERS, room }), options.allowPartial);
  }

  /**
   * Forgets this node's connections and announces the room leaves and offline
   * users that this causes, asking the others once for all of them. The node
   * goes on answering queries, with nothing: while its server is up the others
   * still count it, and a node that went silent would make their queries wait
   * out the timeout.
   */
  protected async shutdown(): Promise<void> {
    const leaving = this.#local.clear().map(unversioned);
    const roomsOf = new Map<string, string[]>();
    for (const transition of leaving) {
      const rooms = roomsOf.get(transition.userId) ?? [];
      if (transition.type === "left") rooms.push(transition.room);
      roomsOf.set(transition.userId, rooms);
    }
    const questions = [...roomsOf];
    const answers = questions.length === 0 ? [] : await this.#heldElsewhere(questions);
    const elsewhere = new Map(questions.map(([userId], i) => [userId, answers[i]!]));
    for (const transition of leaving) {
      const held = elsewhere.get(transition.userId);
      const announce = transition.type === "left" ? !held?.rooms.has(transition.room) : !held?.online;
      if (announce) this.events.announce(transition);
    }
  }

  #answer(request: QueryRequest, ack: (response: QueryResponse) => void): void {
    if (typeof ack !== "function") return;
    // a closed store answers too, with nothing: its connections are already cleared
    switch (request.type) {
      case MessageType.IS_USER_CONNECTED:
        return ack({ yes: this.#local.connectionsOf(request.userId) > 0 });
      case MessageType.USERS:
        return ack({ users: this.#local.users().map(toEntry) });
      case MessageType.IS_USER_IN_ROOM:
        return ack({ yes: this.#local.roomConnectionsOf(request.userId, request.room) > 0 });
      case MessageType.ROOM_USERS:
        return ack({ users: this.#local.roomUsers(request.room).map(toEntry) });
      case MessageType.USER_INFO:
        return ack({ info: this.#local.info(request.userId) });
      case MessageType.UPDATE_INFO:
        try {
          return ack({ yes: this.#local.updateInfo(request.userId, request.info).length > 0 });
        } catch {
          return ack({ yes: false });
        }
      case MessageType.HOLDS:
        return ack({ holds: request.users.map(([userId, rooms]) => this.#holds(userId, rooms)) });
      default:
        return ack({}); // a question from a newer version: answer "nothing" rather than make it wait
    }
  }

  #holds(userId: string, rooms: string[]): HoldsAnswer {
    return [this.#local.connectionsOf(userId) > 0, rooms.filter((room) => this.#local.roomConnectionsOf(userId, room) > 0)];
  }

  /** Per question, what the other nodes hold, in one round trip; a missing node counts as holding nothing. */
  async #heldElsewhere(questions: HoldsQuestion[]): Promise<HeldElsewhere[]> {
    const answer = await this.#ask({ type: MessageType.HOLDS, users: questions });
    if (answer.missing > 0) debug("deciding transitions without %d node(s)", answer.missing);
    return questions.map((_, i) => {
      const held: HeldElsewhere = { online: false, rooms: new Set() };
      for (const response of answer.responses) {
        const [online, rooms] = response.holds?.[i] ?? [false, []];
        held.online ||= online;
        for (const room of rooms) held.rooms.add(room);
      }
      return held;
    });
  }

  /** Whether any other node answers yes; a missing node counts as "no". */
  async #elsewhere(request: QueryRequest): Promise<boolean> {
    const answer = await this.#ask(request);
    if (answer.missing > 0) debug("deciding a transition without %d node(s)", answer.missing);
    return answer.responses.some((response) => response.yes);
  }

  async #ask(message: QueryRequest): Promise<Ask> {
    const expected = Math.max(0, (await this.namespace.adapter.serverCount()) - 1);
    if (expected === 0) return { responses: [], missing: 0, expected };
    let guard: NodeJS.Timeout | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      guard = setTimeout(() => reject(Object.assign(new Error("presence query timed out"), { responses: [] })), this.#timeoutMs);
    });
    try {
      const responses = (await Promise.race([this.namespace.serverSideEmitWithAck(QUERY_EVENT, message), timedOut])) as QueryResponse[];
      return { responses, missing: Math.max(0, expected - responses.length), expected };
    } catch (error) {
      const responses = ((error as AckError).responses ?? []) as QueryResponse[];
      debug("query of type %d: %d of %d nodes answered (%s)", message.type, responses.length, expected, (error as Error).message);
      return { responses, missing: Math.max(1, expected - responses.length), expected };
    } finally {
      clearTimeout(guard);
    }
  }

  /** A "yes" from any node is the whole answer, even with others missing. */
  #yesFromAny(answer: Ask): ClusterAnswer<boolean> {
    const value = answer.responses.some((response) => response.yes);
    return this.#settle({ value, partial: !value && answer.missing > 0, missingNodes: value ? 0 : answer.missing }, answer.expected);
  }

  #merged(local: ReturnType<typeof toEntry>[], answer: Ask, allowPartial?: boolean): ClusterAnswer<UserPresence[]> {
    const value = mergeUsers([local, ...answer.responses.map((response) => response.users ?? [])]);
    return this.#settle({ value, partial: answer.missing > 0, missingNodes: answer.missing }, answer.expected, allowPartial);
  }

  #settle<T>(result: ClusterAnswer<T>, expected: number, allowPartial = this.#allowPartial): ClusterAnswer<T> {
    if (result.partial && !allowPartial) throw new NodesUnresponsiveError(result.missingNodes, expected, result.value);
    return result;
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
