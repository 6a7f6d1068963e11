import { createPresenceClient, type PresenceClient, type PresenceClientOptions } from "@presence/client";
import type { Socket } from "socket.io-client";

/** One client of a socket and scope, with how many subscribed components use it. */
export interface SharedClient {
  readonly client: PresenceClient<object>;
  users: number;
}

/** Per socket, per scope key: the one client every component of that scope shares. */
const clients = new WeakMap<Socket, Map<string, SharedClient>>();

/** The client of this socket and scope, if some component uses it now: read during render, never created there. */
export const peekClient = (socket: Socket, key: string): SharedClient | undefined => clients.get(socket)?.get(key);

/** Takes a user of the socket and scope's client, creating it for the first. Called from a subscribe (an effect), never from a render. */
export function acquireClient(socket: Socket, key: string, options: PresenceClientOptions): SharedClient {
  let byKey = clients.get(socket);
  if (!byKey) clients.set(socket, (byKey = new Map()));
  let shared = byKey.get(key);
  if (!shared) byKey.set(key, (shared = { client: createPresenceClient<object>(socket, options), users: 0 }));
  shared.users++;
  return shared;
}

/**
 * Gives a user back; the last one closes the client, a microtask later:
 * StrictMode (and a component that moves) unsubscribes and subscribes again
 * at once, and should find the same client, with its view, still there.
 */
export function releaseClient(socket: Socket, key: string, shared: SharedClient): void {
  if (--shared.users > 0) return;
  queueMicrotask(() => {
    const byKey = clients.get(socket);
    if (shared.users > 0 || byKey?.get(key) !== shared) return;
    byKey.delete(key);
    shared.client.close();
  });
}
