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
  type RoomSubscribeHook,
  type SyncOptions,
} from "./sync";
export {
  DIFF,
  RESYNC,
  STATE,
  SUBSCRIBE,
  UNSUBSCRIBE,
  scopeKey,
  type DiffEntry,
  type DiffFrame,
  type ResyncFrame,
  type StateEntry,
  type StateFrame,
  type SubscribeReply,
  type SubscribeRequest,
  type SyncErrorReason,
  type SyncScope,
} from "./sync-protocol";
