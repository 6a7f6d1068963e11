import type { Socket as ClientSocket } from "socket.io-client";
import { afterEach } from "vitest";
import { connectClient, startServer, type TestServer } from "../src/testing-harness";

// the harness ships in the published testing entry; the tests here use it from source
export * from "../src/testing-harness";


/** Servers and clients a test file makes, each closed after every test (a server closed by the test itself too, once). */
export function useTestServers() {
  const servers: TestServer[] = [];
  const sockets: ClientSocket[] = [];
  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.close();
    for (const server of servers.splice(0)) await server.close();
  });
  return {
    async server(...args: Parameters<typeof startServer>): Promise<TestServer> {
      const server = await startServer(...args);
      let closing: Promise<void> | undefined;
      const once = { ...server, close: () => (closing ??= server.close()) };
      servers.push(once);
      return once;
    },
    async client(...args: Parameters<typeof connectClient>): Promise<ClientSocket> {
      const socket = await connectClient(...args);
      sockets.push(socket);
      return socket;
    },
  };
}
