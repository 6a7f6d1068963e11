import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { waitFor } from "@presence/core/testing";
import { Server, type Socket } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, expect, it } from "vitest";
import { Followers } from "./followers";

const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A real server with `n` connected clients; resolves with the server's sockets and the clients. */
async function sockets(n: number): Promise<{ server: Socket[]; clients: ClientSocket[] }> {
  const http = createServer();
  const io = new Server(http);
  const server: Socket[] = [];
  io.on("connection", (socket) => void server.push(socket));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const clients = Array.from({ length: n }, () => connect(url, { transports: ["websocket"], forceNew: true }));
  closers.push(() => {
    for (const client of clients) client.close();
    void io.close();
  });
  await waitFor(`${n} sockets connected`, () => expect(server).toHaveLength(n));
  return { server, clients };
}

const following = (followers: Followers, userId: string, all: Socket[]) => [...followers.of(userId)].map((socket) => all.indexOf(socket)).sort();

it("indexes each socket's list, replaced whole, and forgets a socket once it disconnects", async () => {
  const { server, clients } = await sockets(2);
  const [a, b] = server as [Socket, Socket];
  const followers = new Followers();
  followers.set(a, ["alice", "bob", "alice"]);
  followers.set(b, ["bob"]);
  expect([following(followers, "alice", server), following(followers, "bob", server), followers.size]).toEqual([[0], [0, 1], 2]);
  // replaced whole: alice is no longer followed by anyone
  followers.set(a, ["bob", "carol"]);
  expect([following(followers, "alice", server), following(followers, "bob", server), following(followers, "carol", server)]).toEqual([[], [0, 1], [0]]);
  followers.set(b, []);
  expect([following(followers, "bob", server), followers.size]).toEqual([[0], 2]);
  // b follows again after an empty list, then disconnects: nothing of it is left
  followers.set(b, ["dave"]);
  clients[1]!.close();
  await waitFor("b's disconnect", () => expect(b.connected).toBe(false));
  expect([following(followers, "dave", server), followers.size]).toEqual([[], 2]);
  clients[0]!.close();
  await waitFor("a's disconnect", () => expect(a.connected).toBe(false));
  expect(followers.size).toBe(0);
});

it("keeps a user followed by more sockets than an array holds exact, past the switch to a set, down to none", async () => {
  const { server } = await sockets(70);
  const followers = new Followers();
  for (const [i, socket] of server.entries()) followers.set(socket, i % 2 ? ["star", "odd"] : ["star"]);
  expect([following(followers, "star", server).length, following(followers, "odd", server).length]).toEqual([70, 35]);
  // the even ones stop following the star, one by one
  for (const [i, socket] of server.entries()) if (i % 2 === 0) followers.set(socket, []);
  const odd = server.flatMap((_, i) => (i % 2 ? [i] : [])).sort();
  expect([following(followers, "star", server), following(followers, "odd", server)]).toEqual([odd, odd]);
  for (const socket of server) followers.set(socket, []);
  expect(followers.size).toBe(0);
});
