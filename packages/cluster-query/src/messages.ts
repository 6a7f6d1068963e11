import type { UserPresence } from "@presence/core";

/** The server-side event every node of the namespace listens on. */
export const QUERY_EVENT = "presence:cluster-query";

/** What one node asks the others. */
export enum MessageType {
  IS_USER_CONNECTED = 1,
  USERS = 2,
}

export type QueryRequest =
  | { type: MessageType.IS_USER_CONNECTED; uid: string; requestId: number; userId: string }
  | { type: MessageType.USERS; uid: string; requestId: number };

export interface IsUserConnectedResponse {
  uid: string;
  requestId: number;
  connected: boolean;
}

export interface UsersResponse {
  uid: string;
  requestId: number;
  /** `[userId, connections]` pairs: compact on the wire. */
  users: Array<[string, number]>;
}

export type QueryResponse = IsUserConnectedResponse | UsersResponse;

/** Folds every node's users into one list, a user counted once with their connections summed. */
export function mergeUsers(lists: Iterable<Iterable<[string, number]>>): UserPresence[] {
  const merged = new Map<string, number>();
  for (const list of lists) {
    for (const [userId, connections] of list) merged.set(userId, (merged.get(userId) ?? 0) + connections);
  }
  return [...merged].map(([userId, connections]) => ({ userId, connections }));
}
