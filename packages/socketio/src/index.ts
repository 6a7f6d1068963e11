export {
  Presence,
  createPresence,
  type IdentifyHook,
  type Identity,
  type PresenceEventNames,
  type PresenceEvents,
  type PresenceOptions,
  type RefusalReason,
} from "./presence";
