import { once } from "node:events";
import { connect, createServer, type Server, type Socket } from "node:net";

/**
 * A TCP load balancer in front of demo instances (or one cluster's port), as
 * a deploy puts one: each connection goes to the next backend in turn, and to
 * the one after it when that one refuses (an instance restarting). It keeps
 * nothing sticky: the tests' clients use WebSocket alone, one TCP connection
 * per session.
 */
export class TcpBalancer {
  /** The backends' ports, in turn; change it to point at a restarted instance's new port. */
  backends: number[];
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #next = 0;
  /** Connections a backend refused, for failure messages. */
  refused = 0;

  private constructor(backends: number[]) {
    this.backends = backends;
    this.#server = createServer((client) => this.#relay(client));
  }

  static async start(backends: number[]): Promise<TcpBalancer> {
    const balancer = new TcpBalancer(backends);
    balancer.#server.listen(0, "127.0.0.1");
    await once(balancer.#server, "listening");
    return balancer;
  }

  get port(): number {
    const address = this.#server.address();
    if (address === null || typeof address === "string") throw new Error("the balancer is not listening");
    return address.port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #track(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
  }

  #relay(client: Socket): void {
    this.#track(client);
    // what the client sends waits, paused, until a backend takes the connection
    client.pause();
    client.on("error", () => client.destroy());
    const start = this.#next++;
    const attempt = (tries: number) => {
      const backends = this.backends;
      if (client.destroyed) return;
      if (tries >= backends.length) return void client.destroy();
      const upstream = connect(backends[(start + tries) % backends.length]!, "127.0.0.1");
      this.#track(upstream);
      let connected = false;
      upstream.once("connect", () => {
        connected = true;
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
      });
      upstream.on("error", () => {
        if (connected) return void client.destroy();
        this.refused++;
        attempt(tries + 1);
      });
      upstream.once("close", () => {
        if (connected) client.destroy();
      });
      client.once("close", () => upstream.destroy());
    };
    attempt(0);
  }
}
