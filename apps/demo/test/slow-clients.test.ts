import { connect as tcp, type Socket } from "node:net";
import type { Socket as ClientSocket } from "socket.io-client";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connectClient, eventually, getJson, login, sleep, startDemo, type DemoProcess } from "./demo-process";

/** A raw TCP client of the demo: what it writes is up to the test; `closed` resolves with what the server sent, once the server closed it. */
function rawClient(port: number): Promise<{ socket: Socket; closed: (what: string) => Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = tcp(port, "127.0.0.1");
    let received = "";
    socket.on("data", (chunk) => (received += chunk));
    socket.on("error", () => {}); // a reset is a close too
    const ended = new Promise<string>((done) => socket.once("close", () => done(received)));
    const closed = (what: string) =>
      new Promise<string>((done, fail) => {
        const timer = setTimeout(() => {
          socket.destroy();
          fail(new Error(`the server did not close ${what} within 15 s`));
        }, 15_000);
        void ended.then((text) => {
          clearTimeout(timer);
          done(text);
        });
      });
    socket.once("connect", () => resolve({ socket, closed }));
    socket.once("error", reject);
  });
}

/** Writes `line` every 200 ms until the socket closes: a client that is never done. */
function trickle(socket: Socket, line: string): void {
  const timer = setInterval(() => (socket.writable ? socket.write(line) : clearInterval(timer)), 200);
  socket.once("close", () => clearInterval(timer));
}

const TIMEOUTS = ["--headers-timeout-ms", "1000", "--request-timeout-ms", "2000"];

for (const mode of ["standalone", "cluster"] as const) {
  describe(`slow HTTP clients are closed (${mode} mode${mode === "cluster" ? ": the sticky relay and the workers" : ""})`, () => {
    let demo: DemoProcess;
    beforeAll(async () => {
      const workers = mode === "cluster" ? ["--workers", "2"] : [];
      demo = await startDemo(["--mode", mode, ...workers, ...TIMEOUTS, "--log-level", "warn"]);
    });
    afterAll(async () => {
      expect(await demo.stop()).toBe(0);
    });

    it("closes a connection that sends nothing", async () => {
      const { closed } = await rawClient(demo.port);
      await closed("a silent connection");
    });

    it("closes a connection whose headers never end, however steadily they trickle", async () => {
      const { socket, closed } = await rawClient(demo.port);
      socket.write("GET /api/health HTTP/1.1\r\nHost: demo\r\n");
      trickle(socket, "X-Slow: yes\r\n");
      const answer = await closed("a slow-header connection");
      expect(answer).not.toContain("200 OK");
    });

    it("closes a connection whose body stalls, and one whose body trickles", async () => {
      for (const [what, after] of [
        ["a stalled body", () => {}],
        ["a trickling body", (socket: Socket) => trickle(socket, " ")],
      ] as const) {
        const { socket, closed } = await rawClient(demo.port);
        socket.write('POST /api/login HTTP/1.1\r\nHost: demo\r\nContent-Type: application/json\r\nContent-Length: 4000\r\n\r\n{"userId"');
        after(socket);
        const answer = await closed(what);
        expect(answer, what).not.toContain("200 OK");
      }
    });

    it("keeps serving everyone else meanwhile, and keeps WebSocket and long-polling clients past the timeouts", async () => {
      const slow = await Promise.all(Array.from({ length: 20 }, () => rawClient(demo.port)));
      for (const { socket } of slow) socket.write("GET / HTTP/1.1\r\n");
      const token = await login(demo.url, "patient");
      const clients: ClientSocket[] = [];
      try {
        for (const transports of [["websocket"], ["polling"]]) clients.push(await connectClient(demo.url, token, { transports }));
        expect((await getJson(`${demo.url}/api/health`)).status).toBe(200);
        await Promise.all(slow.map(({ closed }, i) => closed(`slow connection #${i + 1}`)));
        // past both timeouts: a held long-polling request and an upgraded connection are not requests being sent
        await sleep(2500);
        expect(clients.map((client) => client.connected)).toEqual([true, true]);
        expect(await clients[1]!.timeout(5000).emitWithAck("room:join", "general")).toEqual({ ok: true });
      } finally {
        for (const client of clients) client.close();
      }
    });
  });
}

describe("the HTTP connection cap (--max-http-connections)", () => {
  it("closes connections over the cap at once, and takes new ones when some close (standalone)", async () => {
    const demo = await startDemo(["--mode", "standalone", "--max-http-connections", "5", "--log-level", "warn"]);
    try {
      const held = await Promise.all(Array.from({ length: 5 }, () => rawClient(demo.port)));
      for (const { socket } of held) socket.write("GET /api/health HTTP/1.1\r\nHost: demo\r\n"); // headers not done: held open
      const over = await rawClient(demo.port);
      expect(await over.closed("a connection over the cap")).toBe("");
      held[0]!.socket.destroy();
      await held[0]!.closed("the connection the test closed");
      // a place is free again, once the server has seen the close (the test's side of it comes first)
      await eventually(async () => expect((await getJson(`${demo.url}/api/health`)).status).toBe(200), 10_000, "the health route to answer in the freed place");
      for (const { socket } of held) socket.destroy();
    } finally {
      expect(await demo.stop()).toBe(0);
    }
  });

  it("caps each worker's connections, WebSocket ones included (cluster)", { timeout: 60_000 }, async () => {
    const demo = await startDemo(["--mode", "cluster", "--workers", "2", "--max-http-connections", "3", "--rate-limit", "0", "--log-level", "warn"]);
    const clients: ClientSocket[] = [];
    try {
      const token = await login(demo.url, "crowd");
      const outcomes: string[] = [];
      // one at a time: the balancer fills both workers evenly; each takes 3
      for (let i = 0; i < 8; i++) {
        outcomes.push(
          await connectClient(demo.url, token, { transports: ["websocket"] }).then(
            (socket) => (clients.push(socket), "connected"),
            () => "refused",
          ),
        );
      }
      expect(outcomes.filter((o) => o === "connected"), outcomes.join(" ")).toHaveLength(6);
      expect(outcomes.slice(6)).toEqual(["refused", "refused"]);
      clients.pop()!.close();
      await eventually(async () => {
        const socket = await connectClient(demo.url, token, { transports: ["websocket"] });
        clients.push(socket);
      }, 10_000, "a connection taken once a place was free");
    } finally {
      for (const client of clients) client.close();
      expect(await demo.stop()).toBe(0);
    }
  });
});
