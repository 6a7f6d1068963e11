export {
  Presence,
  createPresence,
  type IdentifyHook,
  type PresenceEventNames,
  type PresenceEvents,
  type PresenceOptions,
  type RefusalReason,
} from "./presence";
