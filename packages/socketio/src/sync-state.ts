import type { PresenceStore, UserPresence } from "@presence/core";
import type { Namespace, Socket } from "socket.io";
import { STATE, scopeKey, type StateEntry, type StateFrame, type SyncScope } from "./sync-protocol";

type StateBody = Pick<StateFrame, "users" | "count" | "done">;

/** The subscribers of one scope waiting for the same read: socket id -> request number. */
interface SharedRead {
  requests: { [socketId: string]: number };
  sent: Promise<void>;
}

const entry = (user: Pick<UserPresence, "userId" | "info">): StateEntry => (user.info === undefined ? [user.userId] : [user.userId, user.info]);

/**
 * Reads scopes' states from the store and sends them to their subscribers.
 * Subscribers of every user or of one room that arrive while a read of that
 * scope is under way wait for the next one and share it: one store read,
 * each page encoded once and sent to all of them. In a storm of N
 * subscribers this costs a read per round instead of N reads.
 */
export class StateReads {
  readonly #namespace: Namespace;
  readonly #store: PresenceStore;
  readonly #pageSize: number;
  /** Per scope key: the read that has not started yet, which newcomers join. */
  readonly #waiting = new Map<string, SharedRead>();
  /** Per scope key: the latest read, which the next one waits for. */
  readonly #latest = new Map<string, Promise<void>>();

  constructor(namespace: Namespace, store: PresenceStore, pageSize: number) {
    this.#namespace = namespace;
    this.#store = store;
    this.#pageSize = pageSize;
  }

  /**
   * Sends the scope's state to `socket` (which has joined the scope's sync
   * room already, so that a change decided after the read starts reaches
   * it as a diff). Resolves once the last page is sent.
   */
  send(socket: Socket, scope: SyncScope, request: number, userIds: string[] = []): Promise<void> {
    const key = scopeKey(scope);
    const requests = { [socket.id]: request };
    const version = Date.now();
    const to = (body: StateBody) => socket.emit(STATE, { key, requests, version, ...body } satisfies StateFrame);
    switch (scope.type) {
      case "count":
        return this.#store.usersCount().then((count) => void to({ count, done: true }));
      case "users":
        return this.#users(userIds).then((users) => void to({ users, done: true }));
      default:
        return this.#shared(socket, scope, request);
    }
  }

  async #users(userIds: string[]): Promise<StateEntry[]> {
    const users: StateEntry[] = [];
    for (let i = 0; i < userIds.length; i += 50) {
      const chunk = await Promise.all(
        userIds.slice(i, i + 50).map(async (userId) => ((await this.#store.isUserConnected(userId)) ? entry({ userId, info: await this.#store.userInfo(userId) }) : undefined)),
      );
      for (const user of chunk) if (user) users.push(user);
    }
    return users;
  }

  #shared(socket: Socket, scope: SyncScope, request: number): Promise<void> {
    const key = scopeKey(scope);
    let read = this.#waiting.get(key);
    if (!read) {
      const requests: SharedRead["requests"] = {};
      const previous = this.#latest.get(key) ?? Promise.resolve();
      const sent = previous
        .catch(() => {})
        // newcomers of this event-loop turn join too
        .then(() => new Promise<void>((resolve) => setImmediate(resolve)))
        .then(() => {
          this.#waiting.delete(key); // from now on, newcomers wait for the next read
          return this.#readPages(scope, requests);
        });
      read = { requests, sent };
      this.#waiting.set(key, read);
      this.#latest.set(key, sent);
      void sent.then(
        () => this.#latest.get(key) === sent && this.#latest.delete(key),
        () => this.#latest.get(key) === sent && this.#latest.delete(key),
      );
    }
    read.requests[socket.id] = request;
    return read.sent;
  }

  async #readPages(scope: SyncScope, requests: SharedRead["requests"]): Promise<void> {
    const key = scopeKey(scope);
    const version = Date.now();
    const to = this.#namespace.local.to(Object.keys(requests));
    const send = (body: StateBody) => to.emit(STATE, { key, requests, version, ...body } satisfies StateFrame);
    const options = { pageSize: this.#pageSize };
    const pages = scope.type === "room" ? this.#store.roomUsers(scope.room, options) : this.#store.users(options);
    // one page behind, so that the last page is the one marked done
    let previous: StateEntry[] | undefined;
    let buffered: StateEntry[] = [];
    for await (const page of pages) {
      buffered.push(...page.map(entry));
      if (buffered.length < this.#pageSize) continue;
      if (previous) send({ users: previous, done: false });
      previous = buffered;
      buffered = [];
    }
    if (previous && buffered.length > 0) {
      send({ users: previous, done: false });
      previous = buffered;
    }
    send({ users: previous ?? buffered, done: true });
  }
}
