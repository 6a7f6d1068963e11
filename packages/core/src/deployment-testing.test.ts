import { LocalPresence } from "./local-presence";
import { LocalStore } from "./store-base";
import type { Transition, UserInfo } from "./store";
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
    const transitions = [...node.connections].flatMap((connectionId) => this.presence.disconnect(connectionId).transitions);
    node.connections.clear();
    return transitions;
  }
}

class ReferenceNode extends LocalStore {
  readonly connections = new Set<string>();
  readonly #backend: Backend;

  constructor(backend: Backend) {
    super(backend.presence);
    this.#backend = backend;
    backend.nodes.add(this);
  }

  override async connect(connectionId: string, userId: string, info?: UserInfo): Promise<boolean> {
    const online = await super.connect(connectionId, userId, info);
    this.connections.add(connectionId);
    return online;
  }

  override async disconnect(connectionId: string): Promise<boolean> {
    this.connections.delete(connectionId);
    return super.disconnect(connectionId);
  }

  #killed = false;

  /** Dies without a goodbye: a survivor announces what this leaves. */
  kill(): Promise<void> {
    this.#killed = true;
    return this.close();
  }

  protected override async shutdown(): Promise<void> {
    const transitions = this.#backend.remove(this);
    if (!this.#killed) return void this.announce(transitions);
    const survivor = [...this.#backend.nodes][0];
    setImmediate(() => survivor?.announceFor(transitions));
  }

  /** Announces what a dead node left behind. */
  announceFor(transitions: Transition[]): void {
    this.announce(transitions);
  }
}

describePresenceDeployment("reference (nodes sharing one LocalPresence)", {
  createDeployment: async (nodes) => {
    const backend = new Backend();
    const stores = Array.from({ length: nodes }, () => new ReferenceNode(backend));
    return {
      stores,
      kill: (node) => stores[node]!.kill(),
      close: async () => {
        await Promise.all(stores.map((store) => store.close()));
      },
    };
  },
});
