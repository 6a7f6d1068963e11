/**
 * The sync protocol between `@presence/socketio` (the server) and
 * `@presence/client`. This file is kept byte-for-byte identical in both
 * packages (packages/client/src/protocol.ts and
 * packages/socketio/src/sync-protocol.ts; a test compares them), so that
 * neither depends on the other at run time.
 */

/** What a user shows others while online: a plain JSON object. */
export type UserInfo = { [key: string]: unknown };

/** client -> server, with an ack: `(request: SubscribeRequest, ack: (reply: SubscribeReply) => void)`. */
export const SUBSCRIBE = "presence:subscribe";
/** client -> server, with an ack: `(request: { scope: SyncScope }, ack: (reply: SubscribeReply) => void)`. */
export const UNSUBSCRIBE = "presence:unsubscribe";
/** server -> the subscribing socket only: one page of a scope's state, {@link StateFrame}. */
export const STATE = "presence:state";
/** server -> every subscriber of a scope, on every node: {@link DiffFrame}. */
export const DIFF = "presence:diff";
/** server -> subscribers: read the state again, {@link ResyncFrame}. */
export const RESYNC = "presence:resync";

/** What a client follows: every online user, a room's users, a list of users, or the count alone. */
export type SyncScope =
  | { type: "all" }
  | { type: "room"; room: string }
  | { type: "users"; userIds: string[] }
  | { type: "count" };

export interface SubscribeRequest {
  scope: SyncScope;
  /** The client's number for this request, echoed in the state frames it causes. */
  request: number;
}

/** Why a subscribe was refused. */
export type SyncErrorReason =
  | "malformed"
  | "too-many-user-ids"
  | "room-forbidden"
  | "rooms-disabled"
  | "unavailable";

export type SubscribeReply =
  | { ok: true }
  | { ok: false; error: { code: string; reason: SyncErrorReason; message: string } };

/** One user of a state: `[userId]`, or `[userId, info]` when the user has info. */
export type StateEntry = [userId: string, info?: UserInfo];

/**
 * One page of a scope's state; the last page has `done: true`. Subscribers
 * of one scope that arrive close together share one read, sent once to all.
 */
export interface StateFrame {
  /** The scope's key ({@link scopeKey}). */
  key: string;
  /** The subscribes this state answers: socket id -> the client's request number. */
  requests: { [socketId: string]: number };
  /** The server's clock (ms) when the state read started: changes decided before it are in the state. */
  version: number;
  users?: StateEntry[];
  /** For the count scope. */
  count?: number;
  done: boolean;
}

/**
 * One user's change: `[userId, ageMs]` for a leave, `[userId, ageMs, info?]`
 * for a join or an info update. The change was decided at `version - ageMs`.
 */
export type DiffEntry = [userId: string, ageMs: number, info?: UserInfo];

/** The changes of one tick for one scope, coalesced per user. */
export interface DiffFrame {
  /** `"all"` (also read by user-list subscribers), `"room:<room>"`, `"rooms"` (info updates for every room subscriber) or `"count"`. */
  key: string;
  /** The flushing node's clock (ms). */
  version: number;
  /** The flushing node (a random id per server start). */
  node?: string;
  /**
   * This node's frame number for this key, counting up by one: every
   * subscriber of the key gets every one, so a gap means a lost frame (and a
   * resync). User-list subscribers see only some `"all"` frames and do not check.
   */
  seq?: number;
  joins?: DiffEntry[];
  leaves?: DiffEntry[];
  updates?: DiffEntry[];
  /** For the count scope: the count read at `version`. */
  count?: number;
}

/** Asks subscribers to read their state again: all of them, or those of one scope key. */
export interface ResyncFrame {
  key?: string;
}

/** The key of a scope, as frames carry it. */
export const scopeKey = (scope: SyncScope): string => (scope.type === "room" ? `room:${scope.room}` : scope.type);
