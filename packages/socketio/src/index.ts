export type { PresenceServerToClientEvents } from "./events";
export {
  DEFAULT_LEAVE_DELAY_MS,
  Presence,
  createPresence,
  type IdentifyHook,
  type Identity,
  type PresenceEventNames,
  type PresenceEvents,
  type PresenceOptions,
  type RefusalReason,
} from "./presence";
