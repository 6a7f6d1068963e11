export type { PresenceServerToClientEvents } from "./events";
export { Presence, createPresence } from "./presence";
export {
  DEFAULT_LEAVE_DELAY_MS,
  type IdentifyHook,
  type Identity,
  type PresenceEventNames,
  type PresenceEvents,
  type PresenceOptions,
  type RefusalReason,
} from "./options";
export {
  PresenceSync,
  SYNC_ROOM_PREFIX,
  SyncScopeError,
  isSyncRoom,
  type AuthorizeHook,
  type ClientUpdateHook,
  type SyncOptions,
} from "./sync";
export { DEFAULT_SOCKET_BOUNDS, type SocketBounds } from "./sync-guard";
export { defaultAuthorize } from "./options";
export * from "@presence/core/protocol";
