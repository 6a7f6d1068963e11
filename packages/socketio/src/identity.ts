import type { UserInfo } from "@presence/core";
import type { Socket } from "socket.io";

export type Identified = { userId: string; info: UserInfo | undefined };

/**
 * Where a socket's identity lives: in `socket.data`, which Socket.IO's
 * connection state recovery restores (a recovered socket skips the
 * middlewares, so anything kept elsewhere would be lost).
 */
export const IDENTITY_KEY = "presence";

export function identityOf(socket: Socket): Identified | undefined {
  const data: unknown = socket.data;
  if (typeof data !== "object" || data === null) return undefined;
  const identity = (data as Record<string, { userId?: unknown; info?: UserInfo | null }> | undefined)?.[IDENTITY_KEY];
  if (typeof identity?.userId !== "string") return undefined;
  // a session restored through Redis comes back msgpack-encoded: an absent info is null there
  return identity.info === null ? { userId: identity.userId, info: undefined } : (identity as Identified);
}
