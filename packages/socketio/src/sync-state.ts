import { MAX_USER_STATES, type PresenceStore, type UserPresence } from "@presence/core";
import { STATE, packState, scopeKey, type PackedState, type StateEntry, type StateFrame, type SyncScope } from "@presence/core/protocol";
import type { Namespace, Socket } from "socket.io";

type StateBody = Pick<StateFrame, "users" | "count" | "done">;

/** The subscribers of one scope waiting for the same read: socket id -> the client's request number. */
interface SharedRead {
  requests: Map<string, number>;
  /** Resolves once the pages before the last are sent, with the last page for each request number's acks (none when it was sent). */
  sent: Promise<Map<number, PackedState>>;
}

/**
 * A state's last page of at most this many users goes in the subscribe's
 * ack: one packet instead of two. A longer one is sent as a `STATE` frame,
 * encoded once per request number rather than once per socket. So is an
 * unversioned state (cluster-query's), which replaces the view whole: it
 * must reach the client before the diffs sent after its read.
 */
const ACK_STATE_USERS = 100;
const fitsAck = (version: number | null, body: StateBody) => version !== null && (body.users?.length ?? 0) <= ACK_STATE_USERS;

const entry = (user: Pick<UserPresence, "userId" | "info">): StateEntry => (user.info === undefined ? [user.userId] : [user.userId, user.info]);

/**
 * Reads scopes' states from the store and sends them to their subscribers,
 * each frame to its subscribing socket alone (a frame names no other
 * socket). Subscribers of every user or of one room that arrive while a read
 * of that scope is under way wait for the next one and share it: one store
 * read, and each page encoded once per request number (in a storm, most
 * sockets send request 1). The state's version is the highest version this
 * node had delivered before the read started (see `TransitionRelay.seen`).
 * A small last page is not sent but returned, for the subscribe's ack.
 */
export class StateReads {
  readonly #namespace: Namespace;
  readonly #store: PresenceStore;
  readonly #pageSize: number;
  readonly #version: () => number | null;
  /** Per scope key: the read that has not started yet, which newcomers join. */
  readonly #waiting = new Map<string, SharedRead>();
  /** Per scope key: the latest read, which the next one waits for. */
  readonly #latest = new Map<string, Promise<unknown>>();

  constructor(namespace: Namespace, store: PresenceStore, pageSize: number, version: () => number | null) {
    this.#namespace = namespace;
    this.#store = store;
    this.#pageSize = pageSize;
    this.#version = version;
  }

  /**
   * Sends the scope's state to `socket`, which has joined the scope's sync
   * room already, so that a change decided after the read starts reaches it
   * as a diff. Resolves once the pages are sent, with the last one when it
   * is left for the ack.
   */
  async send(socket: Socket, scope: SyncScope, request: number, userIds: string[] = []): Promise<PackedState | undefined> {
    const key = scopeKey(scope);
    const version = this.#version();
    const last = (body: StateBody) => {
      const packed = packState({ key, request, version, ...body });
      if (fitsAck(version, body)) return packed;
      // through the local adapter, as every frame: with connection state recovery on, a plain socket.emit would
      // go through the cluster's adapter (a message to every node, an entry in Redis) for a frame that a
      // recovered client never needs replayed (it subscribes again on every connect)
      this.#namespace.local.to(socket.id).emit(STATE, packed);
      return undefined;
    };
    switch (scope.type) {
      case "count":
        return last({ count: await this.#store.usersCount(), done: true });
      case "users":
        return last({ users: await this.#users(userIds), done: true });
      default:
        return this.#shared(socket, scope, request);
    }
  }

  /** The listed users online, in one read (`userStates`) per thousand. */
  async #users(userIds: string[]): Promise<StateEntry[]> {
    const users: StateEntry[] = [];
    for (let i = 0; i < userIds.length; i += MAX_USER_STATES) {
      for (const state of await this.#store.userStates(userIds.slice(i, i + MAX_USER_STATES))) if (state.online) users.push(entry(state));
    }
    return users;
  }

  #shared(socket: Socket, scope: SyncScope, request: number): Promise<PackedState | undefined> {
    const key = scopeKey(scope);
    let read = this.#waiting.get(key);
    if (!read) {
      const requests: SharedRead["requests"] = new Map();
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
      const forget = () => this.#latest.get(key) === sent && this.#latest.delete(key);
      void sent.then(forget, forget);
    }
    read.requests.set(socket.id, request);
    return read.sent.then((last) => last.get(request));
  }

  async #readPages(scope: SyncScope, requests: SharedRead["requests"]): Promise<Map<number, PackedState>> {
    const key = scopeKey(scope);
    const version = this.#version();
    // the sockets of one request number share each encoded frame
    const byRequest = new Map<number, string[]>();
    for (const [socketId, request] of requests) byRequest.set(request, [...(byRequest.get(request) ?? []), socketId]);
    const send = (body: StateBody) => {
      for (const [request, socketIds] of byRequest) {
        this.#namespace.local.to(socketIds).emit(STATE, packState({ key, request, version, ...body }));
      }
    };
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
    const last: StateBody = { users: previous ?? buffered, done: true };
    if (!fitsAck(version, last)) {
      send(last);
      return new Map();
    }
    return new Map([...byRequest.keys()].map((request) => [request, packState({ key, request, version, ...last })]));
  }
}
