/**
 * The sync protocol between `@presence/socketio` (the server) and
 * `@presence/client`, defined once. The server imports it from
 * `@presence/core/protocol`; the client bundles it at build time, so that
 * the client has no run-time dependency.
 *
 * Order comes from the store that decided each change, never from a clock:
 * the server's node drops a change older, by its decider's version, than the
 * last one it delivered for that user, and numbers the rest in the order it
 * delivers them (the `version` of states, diffs and counts is that number).
 * A client applies a change to a user only when its version is newer than
 * what it holds for that user, so duplicates and late frames are harmless. A
 * state is as of at least its `version`: every change with a version at most
 * that is in it.
 */

/** What a user shows others while online: a plain JSON object. */
export type ProtocolUserInfo = { [key: string]: unknown };

/** The protocol's version: a subscribe of another version is refused with the reason `"protocol-version"`. */
export const PROTOCOL_VERSION = 3;

/** client -> server, with an ack: `(request: SubscribeRequest, ack: (reply: SubscribeReply) => void)`. */
export const SUBSCRIBE = "presence:subscribe";
/** client -> server, with an ack: `(request: UnsubscribeRequest, ack: (reply: SubscribeReply) => void)`. */
export const UNSUBSCRIBE = "presence:unsubscribe";
/** client -> server, with an ack: `(request: UpdateRequest, ack: (reply: SubscribeReply) => void)`: the socket's user sets their own info. */
export const UPDATE = "presence:update";
/** server -> the subscribing socket only: one page of a scope's state, {@link StateFrame}. */
export const STATE = "presence:state";
/**
 * server -> each subscriber, once per tick: `DiffFrame[]`, the frames of every
 * scope it follows that changed (a large frame may come alone, as its own
 * packet). Since protocol 3; protocol 2 sent one frame per packet.
 */
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
  /** {@link PROTOCOL_VERSION}. */
  v: number;
  scope: SyncScope;
  /** The client's number for this request, unique per socket: echoed in the state frames it causes. */
  request: number;
}

export interface UnsubscribeRequest {
  v: number;
  scope: SyncScope;
  request: number;
}

export interface UpdateRequest {
  v: number;
  info: ProtocolUserInfo;
}

/** Why a request was refused. */
export type SyncErrorReason =
  | "malformed"
  | "protocol-version"
  | "forbidden"
  | "too-many-user-ids"
  | "too-many-subscriptions"
  | "rate-limited"
  | "rooms-disabled"
  | "unavailable";

export type SubscribeReply =
  | { ok: true }
  | { ok: false; error: { code: string; reason: SyncErrorReason; message: string } };

/** One user of a state: `[userId]`, or `[userId, info]` when the user has info. */
export type StateEntry = [userId: string, info?: ProtocolUserInfo];

/** One page of a scope's state, sent to the subscribing socket alone; the last page has `done: true`. */
export interface StateFrame {
  /** The scope's key ({@link scopeKey}). */
  key: string;
  /** The request this state answers (the client's number). */
  request: number;
  /**
   * The state is as of at least this version: every change versioned at most
   * this is in it. `null` when the store does not version its changes
   * (cluster-query): the state then replaces the view whole.
   */
  version: number | null;
  users?: StateEntry[];
  /** For the count scope. */
  count?: number;
  done: boolean;
}

/**
 * One user's change: `[userId, version]` for a leave, `[userId, version, info?]`
 * for a join or an info update. `version` is `null` when the store does not
 * version its changes: such a change is applied in the order it arrives.
 */
export type DiffEntry = [userId: string, version: number | null, info?: ProtocolUserInfo];

/** The changes of one tick for one scope, coalesced per user (the newest change of each). */
export interface DiffFrame {
  /** `"all"`, `"users"`, `"room:<room>"` or `"count"`. */
  key: string;
  joins?: DiffEntry[];
  leaves?: DiffEntry[];
  updates?: DiffEntry[];
  /** For the count scope: the count, as of at least `version`. */
  count?: number;
  version?: number | null;
}

/** Asks subscribers to read their state again: all of them, or those of one scope key. */
export interface ResyncFrame {
  key?: string;
}

/** The key of a scope, as frames carry it. */
export const scopeKey = (scope: SyncScope): string => (scope.type === "room" ? `room:${scope.room}` : scope.type);
