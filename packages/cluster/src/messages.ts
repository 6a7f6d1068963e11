import type { Transition, UserInfo, UserPresence, UserState } from "@presence/core";

/**
 * Every message of this package carries this tag, because sticky's
 * `setupMaster`, the cluster adapter's `setupPrimary` and ours all listen to
 * the same `cluster.on("message")`: each ignores the others' traffic.
 */
export const MESSAGE_SOURCE = "_presence_cluster";

/** What a worker's store asks the primary (1-49), and what the primary sends back (50+). */
export enum MessageType {
  /** A store starts: the primary may now hand it transitions to announce. */
  OPEN = 1,
  /** A store closes: its connections go after the leave grace (at once if it is the last store). */
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
  USER_STATES = 15,

  /** The answer to one request, matched by its id; with the transitions it decided, for the asker to announce. */
  REPLY = 50,
  /** Transitions for this store to announce once: a dead or closed store's leaves, or a slow store's. */
  ANNOUNCE = 51,
}

/**
 * One call from a store, with its request id (unique per store). A call
 * made again after its caller timed out carries the same id, so the primary
 * answers it from its record instead of applying it twice.
 */
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
  | { type: MessageType.USER_STATES; userIds: readonly string[] }
);

/** The calls that decide transitions: the primary records their answers, and a retry reuses their id. */
export const DECIDING_CALLS: ReadonlySet<MessageType> = new Set([
  MessageType.CONNECT,
  MessageType.DISCONNECT,
  MessageType.JOIN,
  MessageType.LEAVE,
  MessageType.UPDATE_INFO,
]);

/** `[userId, connections, info?]`: compact on the wire. */
export type UserEntry = [string, number, UserInfo?];

/** A typed error, flattened for IPC (json serialization drops an Error's fields). */
export interface WireError {
  code: string;
  message: string;
  reason?: string;
  connectionId?: string;
  userId?: string;
  existingUserId?: string;
}

export type ReplyValue = boolean | number | UserEntry[] | UserState[] | UserInfo | null;

/** What the store is handed to announce, under one assignment id (a new one each time it is handed out). */
export interface Assigned {
  assignment: number;
  /** In the decider's order (ascending versions). */
  transitions: Transition[];
}

export type Reply = ({ type: MessageType.REPLY; id: number; value: ReplyValue } | { type: MessageType.REPLY; id: number; error: WireError }) &
  Partial<Assigned>;

export interface Announce extends Assigned {
  type: MessageType.ANNOUNCE;
}

/**
 * The store's word on one assignment: it announced the first `announced`
 * transitions; `final` once it will announce no more of them (all done, or
 * its deadline passed first: then the primary hands the rest to another
 * store). With `starting`, written just before it announces transition
 * number `announced`: if its worker dies, anything the primary read from
 * that worker after this (the announcement's broadcast, or any later
 * message) shows that transition went out, and nothing after it shows it
 * did not. Acknowledging after announcing instead could not tell: a kill
 * tends to land right after a write, between the broadcast and its acknowledgement.
 */
export interface Ack {
  assignment: number;
  announced: number;
  final: boolean;
  starting?: true;
}

/** Worker -> primary: every call one store made in one event-loop turn, and what it announced. */
export interface WorkerEnvelope {
  source: typeof MESSAGE_SOURCE;
  /** The sending store's id (a worker may hold several stores). */
  store: string;
  requests: Request[];
  acks?: Ack[];
}

/** Primary -> worker: the replies to one batch, and what to announce. */
export interface PrimaryEnvelope {
  source: typeof MESSAGE_SOURCE;
  /** The store these are for. */
  store: string;
  /**
   * When the assignments in here are handed to another store, on the machine
   * clock (`machineTime()`): a store that reads them later announces none of
   * them, so that nothing is announced twice.
   */
  deadline?: number;
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
