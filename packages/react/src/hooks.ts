import type { PresenceClientOptions, PresenceUser, UserInfo } from "@presence/client";
import { useCallback, useSyncExternalStore } from "react";
import type { Socket } from "socket.io-client";
import { acquireClient, peekClient, releaseClient } from "./shared-clients";

/** Whom to follow: every online user (the default), a room's users, or a list of users. */
export type PresenceScope = { room: string; userIds?: never } | { userIds: readonly string[]; room?: never } | { room?: undefined; userIds?: undefined };

/** One key per scope: components that follow the same scope on one socket share its client. */
function scopeKeyOf(scope: PresenceScope | { countOnly: true }): string {
  if ("countOnly" in scope) return "count";
  if (scope.room !== undefined) return `room:${scope.room}`;
  // the same users in any order, or repeated, are the same list
  if (scope.userIds !== undefined) return `users:${JSON.stringify([...new Set(scope.userIds)].sort())}`;
  return "all";
}

/** The one empty list every hook returns while nothing is known (a stable snapshot for useSyncExternalStore). */
const EMPTY: readonly never[] = Object.freeze([]);
const noSubscription = () => () => {};

/**
 * Subscribes to the socket and scope's shared client while the component is
 * mounted: the client is created by the first subscriber (in an effect,
 * never during a render) and closed after the last one unsubscribes.
 */
function useSharedClient<T>(socket: Socket | null | undefined, key: string, options: PresenceClientOptions, read: (shared: NonNullable<ReturnType<typeof peekClient>>) => T, fallback: T): T {
  const subscribe = useCallback(
    (onChange: () => void) => {
      if (!socket) return noSubscription();
      // `options` is the scope `key` was made from: the same for every render with this key
      const shared = acquireClient(socket, key, options);
      const off = shared.client.on("sync", onChange);
      return () => {
        off();
        releaseClient(socket, key, shared);
      };
    },
    // not `options`: a new object each render, for the scope `key` already names
    [socket, key],
  );
  const getSnapshot = () => {
    const shared = socket ? peekClient(socket, key) : undefined;
    return shared ? read(shared) : fallback;
  };
  return useSyncExternalStore(subscribe, getSnapshot, () => fallback);
}

/**
 * The users online in a scope (every user, a room's, or a list's), live:
 * `[{ userId, info }]`, in no particular order, the same array until it
 * changes. Components that follow one scope on one socket share one
 * `@presence/client`, closed when the last of them unmounts. Empty while
 * `socket` is null, before the first state, and on the server.
 *
 * ```tsx
 * const users = usePresence<{ name: string }>(socket, { room: "general" });
 * ```
 */
export function usePresence<Info extends object = UserInfo>(socket: Socket | null | undefined, scope: PresenceScope = {}): readonly PresenceUser<Info>[] {
  const options: PresenceClientOptions = scope.room !== undefined ? { room: scope.room } : scope.userIds !== undefined ? { userIds: scope.userIds } : {};
  return useSharedClient(
    socket,
    scopeKeyOf(scope),
    options,
    ({ client }) => {
      const list = client.list() as readonly PresenceUser<Info>[];
      return list.length === 0 ? EMPTY : list;
    },
    EMPTY,
  );
}

/** How many users are online, live (`0` while `socket` is null, before the first state, and on the server). */
export function usePresenceCount(socket: Socket | null | undefined): number {
  return useSharedClient(socket, "count", { countOnly: true }, ({ client }) => client.count, 0);
}
