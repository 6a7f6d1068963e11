export { ConnectionCounter } from "./counter";
export {
  ConnectionConflictError,
  InvalidConnectionIdError,
  InvalidUserIdError,
  PresenceError,
  StoreClosedError,
  StoreUnavailableError,
  type InvalidUserIdReason,
} from "./errors";
export { DEFAULT_MAX_USER_ID_BYTES, assertConnectionId, assertUserId, isValidUserId } from "./ids";
export {
  StoreEvents,
  type ErrorListener,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserPresence,
  type UsersPageOptions,
} from "./store";
