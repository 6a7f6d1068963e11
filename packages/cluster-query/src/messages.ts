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
}

export type QueryRequest = { uid: string; requestId: number } & (
  | { type: MessageType.IS_USER_CONNECTED; userId: string }
  | { type: MessageType.USERS }
  | { type: MessageType.IS_USER_IN_ROOM; userId: string; room: string }
  | { type: MessageType.ROOM_USERS; room: string }
  | { type: MessageType.USER_INFO; userId: string }
  | { type: MessageType.UPDATE_INFO; userId: string; info: UserInfo }
);

/** `[userId, connections, info?]`: compact on the wire. */
export type UserEntry = [string, number, UserInfo?];

export interface QueryResponse {
  uid: string;
  requestId: number;
  /** IS_USER_CONNECTED, IS_USER_IN_ROOM: whether this node holds it; UPDATE_INFO: whether it updated. */
  yes?: boolean;
  /** USERS, ROOM_USERS */
  users?: UserEntry[];
  /** USER_INFO */
  info?: UserInfo;
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
