import type { Transition, UserInfo, UserPresence } from "@presence/core";

/**
 * Every message of this package carries this tag, because sticky's
 * `setupMaster`, the cluster adapter's `setupPrimary` and ours all listen to
 * the same `cluster.on("message")`: each ignores the others' traffic.
 */
export const MESSAGE_SOURCE = "_presence_cluster";

/** What a worker's store asks the primary (1-49), and what the primary sends back (50+). */
export enum MessageType {
  /** A store starts: the primary may now hand it the transitions of dead workers. */
  OPEN = 1,
  /** A store closes: its connections are removed, the transitions this makes come back. */
  CLOSE = 2,
  CONNECT = 3,
  DISCONNECT = 4,
  JOIN = 5,
  LEAVE = 6,
  UPDATE_INFO = 7,
  USER_INFO = 8,
  IS_USER_CONNECTED = 9,
  USERS_COUNT = 10,
  USERS = 11,
  IS_USER_IN_ROOM = 12,
  ROOM_USERS_COUNT = 13,
  ROOM_USERS = 14,
  /** The store announced a hand-off: the primary forgets it (no reply). */
  ANNOUNCED = 15,

  /** The answer to one request, matched by its id. */
  REPLY = 50,
  /** Transitions left by a dead (or closed) worker, for this store to announce once. */
  ANNOUNCE = 51,
}

/** One call from a store, with its request id (unique per store). */
export type Request = { id: number } & (
  | { type: MessageType.OPEN }
  | { type: MessageType.CLOSE }
  | { type: MessageType.CONNECT; connectionId: string; userId: string; info?: UserInfo }
  | { type: MessageType.DISCONNECT; connectionId: string }
  | { type: MessageType.JOIN; connectionId: string; room: string }
  | { type: MessageType.LEAVE; connectionId: string; room: string }
  | { type: MessageType.UPDATE_INFO; userId: string; info: UserInfo }
  | { type: MessageType.USER_INFO; userId: string }
  | { type: MessageType.IS_USER_CONNECTED; userId: string }
  | { type: MessageType.USERS_COUNT }
  | { type: MessageType.USERS }
  | { type: MessageType.IS_USER_IN_ROOM; userId: string; room: string }
  | { type: MessageType.ROOM_USERS_COUNT; room: string }
  | { type: MessageType.ROOM_USERS; room: string }
  | { type: MessageType.ANNOUNCED; handoffId: number }
);

/** `[userId, connections, info?]`: compact on the wire. */
export type UserEntry = [string, number, UserInfo?];

/** What a DISCONNECT answers: whether the user went offline, and the room leaves it made. */
export interface DisconnectAnswer {
  offline: boolean;
  left: Transition[];
}

/** A typed error, flattened for IPC (json serialization drops an Error's fields). */
export interface WireError {
  code: string;
  message: string;
  reason?: string;
  connectionId?: string;
  userId?: string;
  existingUserId?: string;
}

export type ReplyValue = boolean | number | UserEntry[] | UserInfo | DisconnectAnswer | Transition[] | null;

export type Reply =
  | { type: MessageType.REPLY; id: number; value: ReplyValue }
  | { type: MessageType.REPLY; id: number; error: WireError };

export interface Announce {
  type: MessageType.ANNOUNCE;
  handoffId: number;
  transitions: Transition[];
}

/** Worker -> primary: every call one store made in one event-loop turn. */
export interface WorkerEnvelope {
  source: typeof MESSAGE_SOURCE;
  /** The sending store's id (a worker may hold several stores). */
  store: string;
  requests: Request[];
}

/** Primary -> worker: the replies to one batch, or a hand-off. */
export interface PrimaryEnvelope {
  source: typeof MESSAGE_SOURCE;
  /** The store these are for. */
  store: string;
  messages: Array<Reply | Announce>;
}

export function isWorkerEnvelope(message: unknown): message is WorkerEnvelope {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as WorkerEnvelope).source === MESSAGE_SOURCE &&
    Array.isArray((message as WorkerEnvelope).requests)
  );
}

export function isPrimaryEnvelope(message: unknown): message is PrimaryEnvelope {
  return (
    typeof message === "object" &&
    message !== null &&
    (message as PrimaryEnvelope).source === MESSAGE_SOURCE &&
    Array.isArray((message as PrimaryEnvelope).messages)
  );
}

export const toEntry = ({ userId, connections, info }: UserPresence): UserEntry =>
  info === undefined ? [userId, connections] : [userId, connections, info];

export const fromEntry = ([userId, connections, info]: UserEntry): UserPresence =>
  info === undefined || info === null ? { userId, connections } : { userId, connections, info };
