import { ConnectionCounter } from "./counter";
import { InvalidOptionError } from "./errors";
import { DEFAULT_MAX_ROOM_BYTES, DEFAULT_MAX_USER_ID_BYTES, DEFAULT_MAX_USER_INFO_BYTES, assertConnectionId, assertRoom, assertUserId, parseUserInfo, serializeUserInfo } from "./ids";
import type { Transition, UserInfo, UserPresence, UserState } from "./store";
import { SetMap } from "./set-map";
import { VersionCounter } from "./version";

/** The input limits a store enforces: the binding reads them from its store rather than declaring its own. */
export interface PresenceLimits {
  /**
   * The longest accepted user id, in UTF-8 bytes.
   * @default 256
   */
  maxUserIdBytes: number;
  /**
   * The longest accepted room name, in UTF-8 bytes.
   * @default 256
   */
  maxRoomBytes: number;
  /**
   * The largest accepted user info, in UTF-8 bytes of JSON.
   * @default 1024
   */
  maxUserInfoBytes: number;
}

/** The names of the limits, for a store that checks its options (`assertKnownOptions`). */
export const LIMIT_NAMES = ["maxUserIdBytes", "maxRoomBytes", "maxUserInfoBytes"] as const;

/** Fills in the default limits once. */
export function resolveLimits(limits: Partial<PresenceLimits> = {}): PresenceLimits {
  const resolved = {
    maxUserIdBytes: limits.maxUserIdBytes ?? DEFAULT_MAX_USER_ID_BYTES,
    maxRoomBytes: limits.maxRoomBytes ?? DEFAULT_MAX_ROOM_BYTES,
    maxUserInfoBytes: limits.maxUserInfoBytes ?? DEFAULT_MAX_USER_INFO_BYTES,
  };
  for (const [name, value] of Object.entries(resolved)) {
    if (!Number.isInteger(value) || value < 1) throw new InvalidOptionError("presence limits", name, `must be a positive integer, got ${String(value)}`);
  }
  return resolved;
}

/** What a disconnect changed: the connection's user, and its transitions (the rooms left, then going offline). */
export interface DisconnectResult {
  userId: string | undefined;
  transitions: Transition[];
}

export interface LocalPresenceOptions extends Partial<PresenceLimits> {
  /** The decider's version counter, when it is shared or seeded elsewhere. @default a new `VersionCounter` */
  versions?: VersionCounter;
}

/**
 * The local presence every store builds on, the way socket.io-adapter's
 * in-memory adapter is the base of every distributed one: connections,
 * users, rooms and info on Maps, with the transitions each change makes.
 * Synchronous, validating its input with the typed errors. Each change
 * returns the transitions it made, stamped with the next version of its
 * counter; it never announces anything itself (the store that owns it
 * decides who hears what).
 */
export class LocalPresence {
  readonly limits: PresenceLimits;
  readonly versions: VersionCounter;
  readonly #counter = new ConnectionCounter();
  /** One counter per room: which connections of which users are in it. */
  readonly #rooms = new Map<string, ConnectionCounter>();
  readonly #roomsOf = new SetMap<string>();
  /** Info as JSON, per online user: every read hands out a fresh copy. */
  readonly #info = new Map<string, string>();

  constructor(options: LocalPresenceOptions = {}) {
    const { versions, ...limits } = options;
    this.limits = resolveLimits(limits);
    this.versions = versions ?? new VersionCounter();
  }

  /** Counts a connection: `[connected]` when its user went offline -> online. The latest info given wins. */
  connect(connectionId: string, userId: string, info?: UserInfo): Transition[] {
    assertConnectionId(connectionId);
    assertUserId(userId, this.limits.maxUserIdBytes);
    const json = info === undefined ? undefined : serializeUserInfo(info, this.limits.maxUserInfoBytes);
    const wentOnline = this.#counter.connect(connectionId, userId);
    if (json !== undefined) this.#info.set(userId, json);
    if (!wentOnline) return [];
    const version = this.versions.next();
    return [json === undefined ? { type: "connected", userId, version } : { type: "connected", userId, info: this.info(userId)!, version }];
  }

  /** Uncounts a connection and takes it out of its rooms. Unknown connections change nothing. */
  disconnect(connectionId: string): DisconnectResult {
    const transitions: Transition[] = [];
    for (const room of this.#roomsOf.values(connectionId)) {
      const userId = this.#leaveRoom(connectionId, room);
      if (userId !== undefined) transitions.push({ type: "left", room, userId, version: this.versions.next() });
    }
    const userId = this.#counter.userOf(connectionId);
    if (userId !== undefined && this.#counter.disconnect(connectionId) !== undefined) {
      this.#info.delete(userId);
      transitions.push({ type: "disconnected", userId, version: this.versions.next() });
    }
    return { userId, transitions };
  }

  /** Replaces an online user's info: `[updated]`, or nothing (storing nothing) when they are offline. */
  updateInfo(userId: string, info: UserInfo): Transition[] {
    assertUserId(userId, this.limits.maxUserIdBytes);
    const json = serializeUserInfo(info, this.limits.maxUserInfoBytes);
    if (!this.#counter.isOnline(userId)) return [];
    this.#info.set(userId, json);
    return [{ type: "updated", userId, info: parseUserInfo(json), version: this.versions.next() }];
  }

  /** Puts a counted connection in a room: `[joined]` (with the user's info) when its user entered the room. */
  join(connectionId: string, room: string): Transition[] {
    assertRoom(room, this.limits.maxRoomBytes);
    const userId = this.#counter.userOf(connectionId);
    if (userId === undefined) return [];
    let members = this.#rooms.get(room);
    if (!members) this.#rooms.set(room, (members = new ConnectionCounter()));
    this.#roomsOf.add(connectionId, room);
    if (!members.connect(connectionId, userId)) return [];
    const info = this.info(userId);
    const version = this.versions.next();
    return [info === undefined ? { type: "joined", room, userId, version } : { type: "joined", room, userId, info, version }];
  }

  /** Takes a connection out of a room: `[left]` when its user left the room. */
  leave(connectionId: string, room: string): Transition[] {
    assertRoom(room, this.limits.maxRoomBytes);
    const userId = this.#leaveRoom(connectionId, room);
    return userId === undefined ? [] : [{ type: "left", room, userId, version: this.versions.next() }];
  }

  /** The rooms a counted connection is in. */
  roomsOf(connectionId: string): string[] {
    return this.#roomsOf.values(connectionId);
  }

  isOnline(userId: string): boolean {
    return this.#counter.isOnline(userId);
  }

  /** A user's presence as of the current version: every transition decided so far is in it. */
  state(userId: string): UserState {
    const info = this.info(userId);
    const version = this.versions.current;
    if (!this.isOnline(userId)) return { userId, online: false, version };
    return info === undefined ? { userId, online: true, version } : { userId, online: true, info, version };
  }

  isInRoom(userId: string, room: string): boolean {
    return this.#rooms.get(room)?.isOnline(userId) ?? false;
  }

  get usersCount(): number {
    return this.#counter.usersCount;
  }

  get connectionsCount(): number {
    return this.#counter.connectionsCount;
  }

  roomUsersCount(room: string): number {
    return this.#rooms.get(room)?.usersCount ?? 0;
  }

  userIds(): string[] {
    return [...this.#counter.users()];
  }

  /** Every online user, with connections and info, as a snapshot. */
  users(): UserPresence[] {
    return this.userIds().map((userId) => this.#presence(userId, this.#counter.connectionsOf(userId)));
  }

  /** A room's users, with their connections in it and info. */
  roomUsers(room: string): UserPresence[] {
    const members = this.#rooms.get(room);
    if (!members) return [];
    return [...members.users()].map((userId) => this.#presence(userId, members.connectionsOf(userId)));
  }

  /** The user a counted connection belongs to. */
  userOf(connectionId: string): string | undefined {
    return this.#counter.userOf(connectionId);
  }

  connectionsOf(userId: string): number {
    return this.#counter.connectionsOf(userId);
  }

  roomConnectionsOf(userId: string, room: string): number {
    return this.#rooms.get(room)?.connectionsOf(userId) ?? 0;
  }

  /** Every counted connection id. */
  connectionIds(): string[] {
    return [...this.#counter.connections()].map(([connectionId]) => connectionId);
  }

  /** A fresh copy of an online user's info. */
  info(userId: string): UserInfo | undefined {
    const json = this.#info.get(userId);
    return json === undefined ? undefined : parseUserInfo(json);
  }

  /** Removes everything, returning the room leaves and offline transitions this makes. */
  clear(): Transition[] {
    const transitions: Transition[] = [];
    for (const [room, members] of this.#rooms) {
      for (const userId of members.users()) transitions.push({ type: "left", room, userId, version: this.versions.next() });
    }
    for (const userId of this.#counter.users()) transitions.push({ type: "disconnected", userId, version: this.versions.next() });
    this.#counter.clear();
    this.#rooms.clear();
    this.#roomsOf.clear();
    this.#info.clear();
    return transitions;
  }

  #leaveRoom(connectionId: string, room: string): string | undefined {
    if (!this.#roomsOf.delete(connectionId, room)) return undefined;
    const members = this.#rooms.get(room)!;
    const userId = members.disconnect(connectionId);
    if (members.connectionsCount === 0) this.#rooms.delete(room);
    return userId;
  }

  #presence(userId: string, connections: number): UserPresence {
    const info = this.info(userId);
    return info === undefined ? { userId, connections } : { userId, connections, info };
  }
}
