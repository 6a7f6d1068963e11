import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Transition } from "@presence/core";
import { Server } from "socket.io";
import { io as connect, type Socket as ClientSocket } from "socket.io-client";
import { afterEach, expect, it } from "vitest";
import { DeliveryOrder } from "./delivery-order";
import { EVENTS_ROOM, UserEvents } from "./user-events";

const NAMES = { connected: "user has connected", disconnected: "user has disconnected", updated: "user has updated", joined: "user has joined", left: "user has left" };
const closers: Array<() => void> = [];
afterEach(() => {
  for (const close of closers.splice(0)) close();
});

/** A real server and one client in the events room (and in room r), the client keeping what it heard as "+u@v", "-u@v", "~u@v", "r>u@v", "r<u@v". */
async function setup() {
  const http = createServer();
  const io = new Server(http);
  io.on("connection", (socket) => void socket.join([EVENTS_ROOM, "r"]));
  await new Promise<void>((resolve) => http.listen(0, "127.0.0.1", resolve));
  const client: ClientSocket = connect(`http://127.0.0.1:${(http.address() as AddressInfo).port}`, { transports: ["websocket"] });
  closers.push(() => {
    client.close();
    void io.close();
  });
  const heard: string[] = [];
  client.on(NAMES.connected, (userId: string, _info: unknown, version: number) => heard.push(`+${userId}@${version}`));
  client.on(NAMES.disconnected, (userId: string, version: number) => heard.push(`-${userId}@${version}`));
  client.on(NAMES.updated, (userId: string, _info: unknown, version: number) => heard.push(`~${userId}@${version}`));
  client.on(NAMES.joined, (room: string, userId: string, _info: unknown, version: number) => heard.push(`${room}>${userId}@${version}`));
  client.on(NAMES.left, (room: string, userId: string, version: number) => heard.push(`${room}<${userId}@${version}`));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("waited 5000 ms for the client to connect")), 5000);
    client.once("connect", () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await new Promise((resolve) => setTimeout(resolve, 50)); // joined the rooms
  const order = new DeliveryOrder();
  const userEvents = new UserEvents(io.of("/"), NAMES, order, (room) => room, 1024 * 1024);
  closers.push(() => userEvents.close());
  // as the relay delivers: through the node's order, which drops a late transition
  const events = {
    send(transition: Transition) {
      const admitted = order.admit(transition);
      if (admitted) userEvents.send(admitted.transition, admitted.previous);
    },
  };
  const ping = async () => {
    // a round trip after the events: everything sent before it has arrived
    const marker = `marker-${heard.length}-${Math.random()}`;
    const arrived = new Promise<void>((resolve) => client.once(marker, () => resolve()));
    io.local.emit(marker);
    await arrived;
  };
  return { events, heard, ping };
}

it("sends each user's changes of presence in the decider's order: a late event, and one that changes nothing here, are dropped", async () => {
  const { events, heard, ping } = await setup();
  const sent: Transition[] = [
    { type: "connected", userId: "u", version: 1 },
    { type: "disconnected", userId: "u", version: 2 },
    // the join of v3 was lost on its way here (a node killed before it relayed it): a second leave tells nothing
    { type: "disconnected", userId: "u", version: 4 },
    { type: "connected", userId: "u", version: 5 },
    { type: "connected", userId: "u", version: 3 }, // late
    // the leave of v6 was lost: the join brings new info, so it is sent as an update
    { type: "connected", userId: "u", info: { n: 7 }, version: 7 },
    // the same without info: nothing to tell
    { type: "connected", userId: "u", version: 9 },
    { type: "joined", room: "r", userId: "u", version: 10 },
    { type: "joined", room: "r", userId: "u", version: 12 },
    { type: "left", room: "r", userId: "u", version: 13 },
    { type: "left", room: "r", userId: "u", version: 15 },
  ];
  for (const transition of sent) events.send(transition);
  await ping();
  expect(heard).toEqual(["+u@1", "-u@2", "+u@5", "~u@7", "r>u@10", "r<u@13"]);
});

it("drops an update repeated or arrived late, and sends an update that follows a lost join as the join", async () => {
  const { events, heard, ping } = await setup();
  const sent: Transition[] = [
    { type: "connected", userId: "u", version: 1 },
    { type: "updated", userId: "u", info: { n: 2 }, version: 2 },
    { type: "updated", userId: "u", info: { n: 2 }, version: 2 }, // repeated (a batch announced again by a cleaner)
    { type: "updated", userId: "u", info: { n: 3 }, version: 4 },
    { type: "updated", userId: "u", info: { n: 1 }, version: 3 }, // late: an older info must not replace the newer one
    { type: "disconnected", userId: "u", version: 5 },
    { type: "connected", userId: "u", version: 4 }, // late: older than the leave
    // the join of v6 was lost on its way here: the update says the user is back
    { type: "updated", userId: "u", info: { n: 7 }, version: 7 },
    { type: "disconnected", userId: "u", version: 8 },
  ];
  for (const transition of sent) events.send(transition);
  await ping();
  expect(heard).toEqual(["+u@1", "~u@2", "~u@4", "-u@5", "+u@7", "-u@8"]);
});
