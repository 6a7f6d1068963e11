import { eventually } from "@presence/core/testing";
import type { Server } from "socket.io";
import { afterEach, describe, expect, it } from "vitest";
import { MessageType, QUERY_EVENT, createClusterQueryStore, type ClusterQueryStore, type QueryRequest } from "../src";
import { createBus, startNode } from "./in-process-cluster";

describe("cluster-query asks one question per decision", () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((io) => new Promise<void>((resolve) => io.close(() => resolve()))));
  });

  /** Two nodes on one bus; the questions node 0 sends, as its peer receives them. */
  async function twoNodes() {
    const bus = createBus({ heartbeatInterval: 100, heartbeatTimeout: 400 });
    for (let i = 0; i < 2; i++) servers.push((await startNode(bus)).io);
    const stores = servers.map((io) => createClusterQueryStore(io)) as [ClusterQueryStore, ClusterQueryStore];
    await eventually(async () => {
      for (const io of servers) expect(await io.of("/").adapter.serverCount()).toBe(2);
    }, 10_000);
    const asked: QueryRequest[] = [];
    (servers[1]!.of("/") as unknown as NodeJS.EventEmitter).on(QUERY_EVENT, (request: QueryRequest) => asked.push(request));
    return { stores, asked };
  }

  it("a disconnect asks once about the user and every room the connection leaves", async () => {
    const { stores, asked } = await twoNodes();
    const rooms = ["r1", "r2", "r3", "r4", "r5"];
    await stores[0].connect("a1", "alice");
    await stores[1].connect("b1", "alice");
    for (const room of rooms) await stores[0].join("a1", room);
    await stores[1].join("b1", "r3");
    asked.length = 0;
    const left: string[] = [];
    stores[0].onTransition((t) => t.type === "left" && left.push(t.room));

    expect(await stores[0].disconnect("a1")).toBe(false); // alice is still on node 1
    expect(asked).toEqual([{ type: MessageType.HOLDS, users: [["alice", rooms]] }]);
    expect(left.sort()).toEqual(["r1", "r2", "r4", "r5"]); // r3 she is still in, through node 1
    expect(Object.keys(asked[0]!)).not.toContain("uid");
    expect(Object.keys(asked[0]!)).not.toContain("requestId");
  });

  it("close() asks once about all of its users and rooms", async () => {
    const { stores, asked } = await twoNodes();
    for (let i = 0; i < 10; i++) {
      await stores[0].connect(`c${i}`, `user-${i}`);
      await stores[0].join(`c${i}`, `room-${i % 3}`);
    }
    await stores[1].connect("b1", "user-0");
    asked.length = 0;
    const gone: string[] = [];
    stores[0].onTransition((t) => t.type === "disconnected" && gone.push(t.userId));

    await stores[0].close();
    expect(asked).toHaveLength(1);
    expect(asked[0]!.type).toBe(MessageType.HOLDS);
    expect(gone.sort()).toEqual(Array.from({ length: 9 }, (_, i) => `user-${i + 1}`).sort());
    // closed, it still answers (with nothing), so the other node's queries do not wait on it
    expect(await stores[1].usersList()).toEqual(["user-0"]);
  });
});
