import {
  ConnectionConflictError,
  InvalidConnectionIdError,
  InvalidRoomError,
  InvalidUserIdError,
  InvalidUserInfoError,
  PresenceError,
  StoreClosedError,
  StoreUnavailableError,
  toPresenceError,
  toPresenceErrorCode,
  type InvalidUserIdReason,
} from "@presence/core";
import type { WireError } from "./messages";

/**
 * `ClusterStore` was constructed where it cannot work: in the primary, outside
 * a cluster worker, or in a worker whose primary never called `setupPrimary()`.
 */
export class ClusterSetupError extends PresenceError {
  constructor(message: string) {
    super("CLUSTER_NOT_SET_UP", message);
  }
}

/** Flattens an error for IPC: json serialization would keep none of its fields. */
export function toWireError(error: unknown): WireError {
  if (error instanceof ConnectionConflictError) {
    const { code, message, connectionId, userId, existingUserId } = error;
    return { code, message, connectionId, userId, existingUserId };
  }
  if (error instanceof InvalidUserIdError) return { code: error.code, message: error.message, reason: error.reason };
  // anything not thrown on purpose arrives as UNKNOWN (retryable), never as bad input
  const { code, message } = toPresenceError(error);
  return { code, message };
}

/** Re-creates, in the worker, the same error class the primary threw. */
export function fromWireError(wire: WireError): PresenceError {
  switch (wire.code) {
    case "INVALID_USER_ID":
      return new InvalidUserIdError((wire.reason ?? "malformed") as InvalidUserIdReason, wire.message);
    case "INVALID_ROOM":
      return new InvalidRoomError(wire.message);
    case "INVALID_USER_INFO":
      return new InvalidUserInfoError(wire.message);
    case "INVALID_CONNECTION_ID":
      return new InvalidConnectionIdError(wire.message);
    case "CONNECTION_CONFLICT":
      return new ConnectionConflictError(wire.connectionId ?? "", wire.userId ?? "", wire.existingUserId ?? "");
    case "STORE_CLOSED":
      return new StoreClosedError();
    case "STORE_UNAVAILABLE":
      return new StoreUnavailableError(wire.message);
    default:
      return new PresenceError(toPresenceErrorCode(wire.code), wire.message);
  }
}
