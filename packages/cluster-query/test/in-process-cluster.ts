import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { Server, type Namespace } from "socket.io";
import {
  ClusterAdapterWithHeartbeat,
  type ClusterAdapterOptions,
  type ClusterMessage,
  type ClusterResponse,
} from "socket.io-adapter";

/**
 * Several Socket.IO servers in one process, linked by a cluster adapter whose
 * transport is a plain in-memory bus: the real ClusterAdapter protocol
 * (heartbeats, serverSideEmitWithAck), with no IPC in the way.
 */
export interface BusMember {
  /** Set to true to make this node vanish without a goodbye, as a killed process does. */
  dead: boolean;
  nsp: Namespace;
}

export interface Bus {
  adapter: (nsp: Namespace) => BusMember;
  members: Set<BusMember>;
}

export function createBus(options: ClusterAdapterOptions = { heartbeatInterval: 100, heartbeatTimeout: 400 }): Bus {
  const members = new Set<BusAdapter>();
  const deliver = (fn: () => void) => setImmediate(fn);

  class BusAdapter extends ClusterAdapterWithHeartbeat {
    dead = false;

    constructor(nsp: Namespace) {
      super(nsp, options);
      members.add(this);
      this.init();
    }

    get id() {
      return this.uid;
    }

    protected override doPublish(message: ClusterMessage): Promise<string> {
      if (!this.dead) {
        for (const member of members) {
          if (member !== this && !member.dead && member.nsp.name === this.nsp.name) {
            deliver(() => member.onMessage(message));
          }
        }
      }
      return Promise.resolve("");
    }

    protected override doPublishResponse(requesterUid: string, response: ClusterResponse): Promise<void> {
      if (!this.dead) {
        for (const member of members) {
          if (member.uid === requesterUid && !member.dead) deliver(() => member.onResponse(response));
        }
      }
      return Promise.resolve();
    }

    override close() {
      const result = super.close();
      members.delete(this);
      return result;
    }
  }

  // a plain function, not an arrow: Socket.IO calls it with `new`, as with createAdapter()
  return {
    adapter: function (nsp: Namespace) {
      return new BusAdapter(nsp);
    },
    members,
  };
}

export async function startNode(bus: Bus) {
  const http = createServer();
  const io = new Server(http, { adapter: bus.adapter as never });
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  return { io, port: (http.address() as AddressInfo).port };
}
