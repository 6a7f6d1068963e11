/**
 * Every kind of error this project reports, in one union (as tRPC's
 * `TRPC_ERROR_CODE_KEY`): callers switch on `error.code`, never on a message.
 */
export type PresenceErrorCode =
  /** Bad input: nothing was changed, and retrying will not help. */
  | "INVALID_USER_ID"
  | "INVALID_ROOM"
  | "INVALID_USER_INFO"
  | "INVALID_CONNECTION_ID"
  | "INVALID_SCOPE"
  | "CONNECTION_CONFLICT"
  /** An option given to a constructor or factory is out of range or of the wrong type. */
  | "INVALID_OPTION"
  /** `@presence/cluster` used in a worker whose primary never called `setupPrimary()`. */
  | "CLUSTER_NOT_SET_UP"
  /** A room query on a binding or store that tracks no rooms. */
  | "ROOMS_DISABLED"
  /** The app's `authorize` hook (or its default) refused: this socket may not see that. */
  | "FORBIDDEN"
  /** One socket asked too much too fast: retrying later is safe. */
  | "RATE_LIMITED"
  /** A bound on what one socket may make the server hold was reached (rooms, subscriptions). */
  | "LIMIT_EXCEEDED"
  /** A call after `close()`. */
  | "STORE_CLOSED"
  /** The backing service did not answer in time, or refused for now: retrying is safe. */
  | "STORE_UNAVAILABLE"
  /** Some cluster nodes did not answer a query. */
  | "NODES_UNRESPONSIVE"
  /** The process was declared dead by the others (its lease expired) and must republish. */
  | "FENCED"
  /** Stores of one deployment spread users over different numbers of Redis buckets. */
  | "BUCKET_LAYOUT"
  /** The deployment in Redis was written under another data layout (another major version of the store). */
  | "DATA_LAYOUT"
  /** Anything that was not thrown on purpose (normalized by {@link toPresenceError}). */
  | "UNKNOWN";

/** Every code, for a receiver that rebuilds errors from the wire (IPC, adapters) and must check what it got. */
export const PRESENCE_ERROR_CODES: readonly PresenceErrorCode[] = [
  "INVALID_USER_ID",
  "INVALID_ROOM",
  "INVALID_USER_INFO",
  "INVALID_CONNECTION_ID",
  "INVALID_SCOPE",
  "CONNECTION_CONFLICT",
  "INVALID_OPTION",
  "CLUSTER_NOT_SET_UP",
  "ROOMS_DISABLED",
  "FORBIDDEN",
  "RATE_LIMITED",
  "LIMIT_EXCEEDED",
  "STORE_CLOSED",
  "STORE_UNAVAILABLE",
  "NODES_UNRESPONSIVE",
  "FENCED",
  "BUCKET_LAYOUT",
  "DATA_LAYOUT",
  "UNKNOWN",
];

/** Narrows a code that came over the wire; anything unknown becomes `UNKNOWN`. */
export function toPresenceErrorCode(code: unknown): PresenceErrorCode {
  return PRESENCE_ERROR_CODES.includes(code as PresenceErrorCode) ? (code as PresenceErrorCode) : "UNKNOWN";
}

/** Codes whose calls may succeed when made again: the store calls are idempotent, so the binding retries these. */
const RETRYABLE = new Set<PresenceErrorCode>(["STORE_UNAVAILABLE", "NODES_UNRESPONSIVE", "FENCED", "RATE_LIMITED", "UNKNOWN"]);

/**
 * Base class of every error this project throws on purpose. `code` is stable
 * and safe to switch on; `message` is for people.
 */
export class PresenceError extends Error {
  readonly code: PresenceErrorCode;

  constructor(code: PresenceErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }

  /** Whether making the same call again may succeed (the input was fine, the moment was not). */
  get retryable(): boolean {
    return RETRYABLE.has(this.code);
  }
}

/**
 * The one normalizer for whatever was thrown: a `PresenceError` as it is,
 * anything else wrapped as `UNKNOWN` with the original as `cause`.
 */
export function toPresenceError(thrown: unknown): PresenceError {
  if (thrown instanceof PresenceError) return thrown;
  if (thrown instanceof Error) return new PresenceError("UNKNOWN", thrown.message, { cause: thrown });
  return new PresenceError("UNKNOWN", typeof thrown === "string" ? thrown : `non-error thrown: ${String(thrown)}`, { cause: thrown });
}

export type InvalidUserIdReason = "not-a-string" | "empty" | "too-long" | "malformed" | "not-a-list" | "too-many";

/** A user id that is not a non-empty, well-formed string within the byte limit. */
export class InvalidUserIdError extends PresenceError {
  readonly reason: InvalidUserIdReason;

  constructor(reason: InvalidUserIdReason, message: string) {
    super("INVALID_USER_ID", message);
    this.reason = reason;
  }
}

/** A room name that is not a non-empty, well-formed string within the byte limit. */
export class InvalidRoomError extends PresenceError {
  constructor(message: string) {
    super("INVALID_ROOM", message);
  }
}

/** User info that is not a plain JSON object within the size limit. */
export class InvalidUserInfoError extends PresenceError {
  constructor(message: string) {
    super("INVALID_USER_INFO", message);
  }
}

/** A connection id that is not a non-empty string. */
export class InvalidConnectionIdError extends PresenceError {
  constructor(message: string) {
    super("INVALID_CONNECTION_ID", message);
  }
}

/** The same connection was connected again under a different user. */
export class ConnectionConflictError extends PresenceError {
  readonly connectionId: string;
  readonly userId: string;
  readonly existingUserId: string;

  constructor(connectionId: string, userId: string, existingUserId: string) {
    super(
      "CONNECTION_CONFLICT",
      `connection ${JSON.stringify(connectionId)} already belongs to another user`,
    );
    this.connectionId = connectionId;
    this.userId = userId;
    this.existingUserId = existingUserId;
  }
}

/** A call on a store (or a presence binding) after `close()`. */
export class StoreClosedError extends PresenceError {
  constructor() {
    super("STORE_CLOSED", "the presence store is closed");
  }
}

/** The backing service did not answer (Redis gone away, a command timed out). */
export class StoreUnavailableError extends PresenceError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("STORE_UNAVAILABLE", message, options);
  }
}

/** A room query on a binding (or store) that tracks no rooms: it would only ever answer "nobody". */
export class RoomsDisabledError extends PresenceError {
  constructor(message = "rooms are not tracked: set the `rooms` option of createPresence to track them") {
    super("ROOMS_DISABLED", message);
  }
}

/** An option given to a constructor or factory is missing, of the wrong type or out of range; `option` names it. */
export class InvalidOptionError extends PresenceError {
  readonly option: string;

  constructor(owner: string, option: string, message: string) {
    super("INVALID_OPTION", `${owner}: \`${option}\` ${message}`);
    this.option = option;
  }
}
