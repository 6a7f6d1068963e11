export { usePresence, usePresenceCount, type PresenceScope } from "./hooks";
export type { PresenceUser, UserInfo } from "@presence/client";
