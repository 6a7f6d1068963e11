import type { UserInfo, UserPresence } from "@presence/core";

/** The server-side event every node of the namespace listens on. */
export const QUERY_EVENT = "presence:cluster-query";

/** What one node asks the others. */
export enum MessageType {
  IS_USER_CONNECTED = 1,
  USERS = 2,
  IS_USER_IN_ROOM = 3,
  ROOM_USERS = 4,
  USER_INFO = 5,
  UPDATE_INFO = 6,
  /** Several users at once, and some of their rooms: a disconnect's or a close's one question. */
  HOLDS = 7,
}

/**
 * What one node asks the others. No sender id or request id: the adapter's
 * `serverSideEmitWithAck` already routes each answer back to its question.
 */
export type QueryRequest =
  | { type: MessageType.IS_USER_CONNECTED; userId: string }
  | { type: MessageType.USERS }
  | { type: MessageType.IS_USER_IN_ROOM; userId: string; room: string }
  | { type: MessageType.ROOM_USERS; room: string }
  | { type: MessageType.USER_INFO; userId: string }
  | { type: MessageType.UPDATE_INFO; userId: string; info: UserInfo }
  | { type: MessageType.HOLDS; users: HoldsQuestion[] };

/** `[userId, rooms]`: does this node hold the user, and in which of these rooms? */
export type HoldsQuestion = [string, string[]];
/** `[online, rooms]`: whether the node holds the user, and the asked rooms it holds them in. */
export type HoldsAnswer = [boolean, string[]];

/** `[userId, connections, info?]`: compact on the wire. */
export type UserEntry = [string, number, UserInfo?];

export interface QueryResponse {
  /** IS_USER_CONNECTED, IS_USER_IN_ROOM: whether this node holds it; UPDATE_INFO: whether it updated. */
  yes?: boolean;
  /** USERS, ROOM_USERS */
  users?: UserEntry[];
  /** USER_INFO */
  info?: UserInfo;
  /** HOLDS: one answer per question, in order. */
  holds?: HoldsAnswer[];
}

export const toEntry = ({ userId, connections, info }: UserPresence): UserEntry =>
  info === undefined ? [userId, connections] : [userId, connections, info];

/** Folds every node's users into one list, a user counted once with their connections summed. */
export function mergeUsers(lists: Iterable<Iterable<UserEntry>>): UserPresence[] {
  const merged = new Map<string, UserPresence>();
  for (const list of lists) {
    for (const [userId, connections, info] of list) {
      const seen = merged.get(userId);
      if (seen) seen.connections += connections;
      else merged.set(userId, info === undefined ? { userId, connections } : { userId, connections, info });
    }
  }
  return [...merged.values()];
}
