import {
  ConnectionCounter,
  DEFAULT_MAX_ROOM_BYTES,
  DEFAULT_MAX_USER_ID_BYTES,
  DEFAULT_MAX_USER_INFO_BYTES,
  StoreClosedError,
  StoreEvents,
  assertConnectionId,
  assertRoom,
  assertUserId,
  inPages,
  parseUserInfo,
  serializeUserInfo,
  type ErrorListener,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UsersPageOptions,
} from "@presence/core";

export interface MemoryStoreOptions {
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes?: number;
  /**
   * The longest accepted room name, in UTF-8 bytes.
   * @default 256
   */
  maxRoomBytes?: number;
  /**
   * The largest accepted user info, in UTF-8 bytes of JSON.
   * @default 1024
   */
  maxUserInfoBytes?: number;
}

/**
 * Presence for one process, on Maps: the classic standalone recipe, made
 * exact and idempotent by `ConnectionCounter`, with rooms and user info.
 * Transitions are exact because this process sees every connection.
 */
export class MemoryStore implements PresenceStore {
  readonly #counter = new ConnectionCounter();
  /** One counter per room: which connections of which users are in it. */
  readonly #rooms = new Map<string, ConnectionCounter>();
  readonly #roomsOf = new Map<string, Set<string>>();
  /** Info as JSON, per online user: every read hands out a fresh copy. */
  readonly #info = new Map<string, string>();
  readonly #events = new StoreEvents();
  readonly #maxUserIdBytes: number;
  readonly #maxRoomBytes: number;
  readonly #maxUserInfoBytes: number;
  #closed = false;

  constructor(options: MemoryStoreOptions = {}) {
    this.#maxUserIdBytes = options.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES;
    this.#maxRoomBytes = options.maxRoomBytes ?? DEFAULT_MAX_ROOM_BYTES;
    this.#maxUserInfoBytes = options.maxUserInfoBytes ?? DEFAULT_MAX_USER_INFO_BYTES;
  }

  /** The synchronous core of `connect`, for callers on the same process. */
  connectSync(connectionId: string, userId: string, info?: UserInfo): boolean {
    this.#assertOpen();
    assertConnectionId(connectionId);
    assertUserId(userId, this.#maxUserIdBytes);
    const json = info === undefined ? undefined : serializeUserInfo(info, this.#maxUserInfoBytes);
    const wentOnline = this.#counter.connect(connectionId, userId);
    if (json !== undefined) this.#info.set(userId, json);
    return wentOnline;
  }

  /**
   * The synchronous core of `disconnect`: also leaves the connection's rooms,
   * returning those transitions instead of announcing them.
   */
  disconnectSync(connectionId: string): { offline: boolean; left: Transition[] } {
    this.#assertOpen();
    const left: Transition[] = [];
    for (const room of this.#roomsOf.get(connectionId) ?? []) {
      const userId = this.#leaveRoom(connectionId, room);
      if (userId !== undefined) left.push({ type: "left", room, userId });
    }
    const userId = this.#counter.disconnect(connectionId);
    if (userId !== undefined) this.#info.delete(userId);
    return { offline: userId !== undefined, left };
  }

  /** The synchronous core of `join`. */
  joinSync(connectionId: string, room: string): boolean {
    this.#assertOpen();
    assertRoom(room, this.#maxRoomBytes);
    const userId = this.#counter.userOf(connectionId);
    if (userId === undefined) return false;
    let members = this.#rooms.get(room);
    if (!members) this.#rooms.set(room, (members = new ConnectionCounter()));
    let rooms = this.#roomsOf.get(connectionId);
    if (!rooms) this.#roomsOf.set(connectionId, (rooms = new Set()));
    rooms.add(room);
    return members.connect(connectionId, userId);
  }

  /** The synchronous core of `leave`. */
  leaveSync(connectionId: string, room: string): boolean {
    this.#assertOpen();
    assertRoom(room, this.#maxRoomBytes);
    return this.#leaveRoom(connectionId, room) !== undefined;
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    return this.connectSync(connectionId, userId, info);
  }

  async disconnect(connectionId: string): Promise<boolean> {
    const { offline, left } = this.disconnectSync(connectionId);
    for (const transition of left) this.#events.announce(transition);
    return offline;
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    this.#assertOpen();
    assertUserId(userId, this.#maxUserIdBytes);
    const json = serializeUserInfo(info, this.#maxUserInfoBytes);
    if (!this.#counter.isOnline(userId)) return false;
    this.#info.set(userId, json);
    return true;
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    this.#assertOpen();
    return this.infoOf(userId);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    return this.joinSync(connectionId, room);
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    return this.leaveSync(connectionId, room);
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    this.#assertOpen();
    return this.#rooms.get(room)?.isOnline(userId) ?? false;
  }

  async roomUsersCount(room: string): Promise<number> {
    this.#assertOpen();
    return this.#rooms.get(room)?.usersCount ?? 0;
  }

  async *roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages(this.roomSnapshot(room), options.pageSize);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    this.#assertOpen();
    return this.#counter.isOnline(userId);
  }

  async usersCount(): Promise<number> {
    this.#assertOpen();
    return this.#counter.usersCount;
  }

  async usersList(): Promise<string[]> {
    this.#assertOpen();
    return [...this.#counter.users()];
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages(this.snapshot(), options.pageSize);
  }

  /** Every online user on this process, with connections and info, as a snapshot. */
  snapshot(): UserPresence[] {
    this.#assertOpen();
    return [...this.#counter.users()].map((userId) => this.#presence(userId, this.#counter.connectionsOf(userId)));
  }

  /** A room's users on this process, with their connections in it and info. */
  roomSnapshot(room: string): UserPresence[] {
    this.#assertOpen();
    const members = this.#rooms.get(room);
    if (!members) return [];
    return [...members.users()].map((userId) => this.#presence(userId, members.connectionsOf(userId)));
  }

  /** The user a counted connection belongs to. */
  userOf(connectionId: string): string | undefined {
    return this.#counter.userOf(connectionId);
  }

  /** Open connections of one user on this process. */
  connectionsOf(userId: string): number {
    return this.#counter.connectionsOf(userId);
  }

  /** Connections of one user in one room on this process. */
  roomConnectionsOf(userId: string, room: string): number {
    return this.#rooms.get(room)?.connectionsOf(userId) ?? 0;
  }

  /** A fresh copy of an online user's info. */
  infoOf(userId: string): UserInfo | undefined {
    const json = this.#info.get(userId);
    return json === undefined ? undefined : parseUserInfo(json);
  }

  onTransition(listener: TransitionListener): () => void {
    return this.#events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.#events.onError(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const transitions: Transition[] = [];
    for (const [room, members] of this.#rooms) {
      for (const userId of members.users()) transitions.push({ type: "left", room, userId });
    }
    for (const userId of this.#counter.users()) transitions.push({ type: "disconnected", userId });
    this.#closed = true;
    this.#counter.clear();
    this.#rooms.clear();
    this.#roomsOf.clear();
    this.#info.clear();
    for (const transition of transitions) this.#events.announce(transition);
    this.#events.clear();
  }

  #leaveRoom(connectionId: string, room: string): string | undefined {
    const rooms = this.#roomsOf.get(connectionId);
    if (!rooms?.delete(room)) return undefined;
    if (rooms.size === 0) this.#roomsOf.delete(connectionId);
    const members = this.#rooms.get(room)!;
    const userId = members.disconnect(connectionId);
    if (members.connectionsCount === 0) this.#rooms.delete(room);
    return userId;
  }

  #presence(userId: string, connections: number): UserPresence {
    const info = this.infoOf(userId);
    return info === undefined ? { userId, connections } : { userId, connections, info };
  }

  #assertOpen(): void {
    if (this.#closed) throw new StoreClosedError();
  }
}

/** Factory form, in the style of Socket.IO's `createAdapter()`. */
export function createMemoryStore(options?: MemoryStoreOptions): MemoryStore {
  return new MemoryStore(options);
}
