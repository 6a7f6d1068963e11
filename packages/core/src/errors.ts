/**
 * Base class of every error this project throws on purpose. `code` is stable
 * and safe to switch on; `message` is for people.
 */
export class PresenceError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

export type InvalidUserIdReason = "not-a-string" | "empty" | "too-long" | "malformed";

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
