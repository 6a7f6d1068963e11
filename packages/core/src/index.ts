export { LIMIT_NAMES, LocalPresence, resolveLimits, type DisconnectResult, type LocalPresenceOptions, type PresenceLimits } from "./local-presence";
export { LocalStore, StoreBase } from "./store-base";
export { VersionCounter, versionSeed } from "./version";
export {
  ConnectionConflictError,
  InvalidConnectionIdError,
  InvalidOptionError,
  InvalidRoomError,
  InvalidUserIdError,
  InvalidUserInfoError,
  PresenceError,
  RoomsDisabledError,
  PRESENCE_ERROR_CODES,
  toPresenceError,
  toPresenceErrorCode,
  type PresenceErrorCode,
  StoreClosedError,
  StoreUnavailableError,
  type InvalidUserIdReason,
} from "./errors";
export {
  DEFAULT_MAX_ROOM_BYTES,
  DEFAULT_MAX_USER_ID_BYTES,
  DEFAULT_MAX_USER_INFO_BYTES,
  MAX_USER_STATES,
  assertConnectionId,
  assertRoom,
  assertUserId,
  assertUserIds,
  isValidUserId,
  parseUserInfo,
  serializeUserInfo,
} from "./ids";
export {
  StoreEvents,
  inPages,
  type ErrorListener,
  type PresenceStore,
  type Transition,
  type TransitionListener,
  type UserInfo,
  type UserPresence,
  type UserState,
  type UsersPageOptions,
} from "./store";
export { PRESENCE_STORE_METHODS, assertImplements, assertKnownOptions, closestName, integerOption } from "./options";
