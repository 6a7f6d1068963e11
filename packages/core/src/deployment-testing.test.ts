import { StoreClosedError } from "./errors";
import { assertUserId } from "./ids";
import { LocalPresence } from "./local-presence";
import { StoreEvents, inPages, type ErrorListener, type PresenceStore, type Transition, type TransitionListener, type UserInfo, type UserPresence, type UsersPageOptions } from "./store";
import { describePresenceDeployment } from "./testing";

/**
 * The smallest exact deployment: nodes that share one `LocalPresence` (the
 * "backend"), each remembering the connections it made. It runs the
 * deployment suite here, in core, so that the suite itself is checked on a
 * store that meets every case, `kill` included.
 */
class Backend {
  readonly presence = new LocalPresence();
  readonly nodes = new Set<ReferenceNode>();

  /** Removes a node's connections, returning the room leaves and offline transitions this makes. */
  remove(node: ReferenceNode): Transition[] {
    this.nodes.delete(node);
    const transitions: Transition[] = [];
    for (const connectionId of node.connections) {
      const { userId, offline, left } = this.presence.disconnect(connectionId);
      transitions.push(...left);
      if (offline && userId !== undefined) transitions.push({ type: "disconnected", userId });
    }
    node.connections.clear();
    return transitions;
  }
}

class ReferenceNode implements PresenceStore {
  readonly connections = new Set<string>();
  readonly events = new StoreEvents();
  readonly #backend: Backend;
  #closed = false;

  constructor(backend: Backend) {
    this.#backend = backend;
    backend.nodes.add(this);
  }

  async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    const online = this.#open().connect(connectionId, userId, info);
    this.connections.add(connectionId);
    return online;
  }

  async disconnect(connectionId: string): Promise<boolean> {
    const { offline, left } = this.#open().disconnect(connectionId);
    this.connections.delete(connectionId);
    for (const transition of left) this.events.announce(transition);
    return offline;
  }

  async updateInfo(userId: string, info: UserInfo): Promise<boolean> {
    return this.#open().updateInfo(userId, info);
  }

  async userInfo(userId: string): Promise<UserInfo | undefined> {
    return this.#open().info(userId);
  }

  async join(connectionId: string, room: string): Promise<boolean> {
    return this.#open().join(connectionId, room);
  }

  async leave(connectionId: string, room: string): Promise<boolean> {
    return this.#open().leave(connectionId, room);
  }

  async isUserInRoom(userId: string, room: string): Promise<boolean> {
    return this.#open().isInRoom(userId, room);
  }

  async roomUsersCount(room: string): Promise<number> {
    return this.#open().roomUsersCount(room);
  }

  async *roomUsers(room: string, options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages(this.#open().roomUsers(room), options.pageSize);
  }

  async isUserConnected(userId: string): Promise<boolean> {
    const presence = this.#open();
    assertUserId(userId, presence.limits.maxUserIdBytes);
    return presence.isOnline(userId);
  }

  async usersCount(): Promise<number> {
    return this.#open().usersCount;
  }

  async usersList(): Promise<string[]> {
    return this.#open().userIds();
  }

  async *users(options: UsersPageOptions = {}): AsyncIterable<UserPresence[]> {
    yield* inPages(this.#open().users(), options.pageSize);
  }

  onTransition(listener: TransitionListener): () => void {
    return this.events.onTransition(listener);
  }

  onError(listener: ErrorListener): () => void {
    return this.events.onError(listener);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const transition of this.#backend.remove(this)) this.events.announce(transition);
    this.events.clear();
  }

  /** Dies without a goodbye: a survivor announces what this leaves. */
  kill(): void {
    this.#closed = true;
    const transitions = this.#backend.remove(this);
    const survivor = [...this.#backend.nodes][0];
    setImmediate(() => transitions.forEach((transition) => survivor?.events.announce(transition)));
  }

  #open(): LocalPresence {
    if (this.#closed) throw new StoreClosedError();
    return this.#backend.presence;
  }
}

describePresenceDeployment("reference (nodes sharing one LocalPresence)", {
  createDeployment: async (nodes) => {
    const backend = new Backend();
    const stores = Array.from({ length: nodes }, () => new ReferenceNode(backend));
    return {
      stores,
      kill: async (node) => stores[node]!.kill(),
      close: async () => {
        await Promise.all(stores.map((store) => store.close()));
      },
    };
  },
});
