// @vitest-environment happy-dom
import { StrictMode, createElement, type ReactNode } from "react";
import { createRoot, type Root } from "react-dom/client";
import { renderToString } from "react-dom/server";
import type { Socket } from "socket.io-client";
import { afterEach, describe, expect, it } from "vitest";
import { usePresence, usePresenceCount, type PresenceScope, type PresenceUser } from "../src";
import { connectAs, startPresenceServer, waitFor, type Server } from "./harness";

// React updates from a store outside act(): no act warnings, the DOM is polled with deadlines instead
(globalThis as { IS_REACT_ACT_ENVIRONMENT?: boolean }).IS_REACT_ACT_ENVIRONMENT = false;

const names = (users: readonly PresenceUser<object>[]) => users.map((user) => user.userId).sort().join(",");

function Online({ socket, scope, label, renders }: { socket: Socket | null; scope?: PresenceScope; label: string; renders?: Array<readonly PresenceUser<object>[]> }) {
  const users = usePresence<{ name?: string }>(socket, scope);
  renders?.push(users);
  return createElement("p", { "data-label": label }, names(users));
}

function Count({ socket }: { socket: Socket | null }) {
  return createElement("p", { "data-label": "count" }, String(usePresenceCount(socket)));
}

describe("@presence/react against a real server", () => {
  let server: Server | undefined;
  const sockets: Socket[] = [];
  const roots: Root[] = [];
  const user = async (userId: string) => {
    const socket = await connectAs(server!.port, userId);
    sockets.push(socket);
    return socket;
  };
  const mount = (node: ReactNode) => {
    const container = document.createElement("div");
    document.body.append(container);
    const root = createRoot(container);
    roots.push(root);
    root.render(node);
    return {
      root,
      text: (label: string) => container.querySelector(`[data-label="${label}"]`)?.textContent,
    };
  };

  afterEach(async () => {
    for (const root of roots.splice(0)) root.unmount();
    for (const socket of sockets.splice(0)) socket.close();
    await server?.close();
    server = undefined;
  });

  it("lists every online user and the count, live, under StrictMode, with one client per socket and scope", async () => {
    server = await startPresenceServer();
    await user("alice");
    const observer = await user("observer");
    const view = mount(
      createElement(
        StrictMode,
        null,
        createElement(Online, { socket: observer, label: "a" }),
        createElement(Online, { socket: observer, label: "b" }),
        createElement(Count, { socket: observer }),
      ),
    );
    await waitFor("the first state", () => expect([view.text("a"), view.text("b"), view.text("count")]).toEqual(["alice,observer", "alice,observer", "2"]));
    const bob = await user("bob");
    await waitFor("bob's join", () => expect([view.text("a"), view.text("b"), view.text("count")]).toEqual(["alice,bob,observer", "alice,bob,observer", "3"]));
    bob.close();
    await waitFor("bob's leave", () => expect([view.text("a"), view.text("count")]).toEqual(["alice,observer", "2"]));
    // StrictMode mounted every effect twice: still one subscribe per scope, for both components of "all"
    expect(server.requests.sort()).toEqual(["+all", "+count"]);

    view.root.unmount();
    await waitFor("the clients closed with the last component", () => expect(server!.requests.sort()).toEqual(["+all", "+count", "-all", "-count"]));
  });

  it("follows a room, and moves to another when the scope changes, closing the first", async () => {
    server = await startPresenceServer();
    const alice = await user("alice");
    const observer = await user("observer");
    for (const socket of [alice, observer]) await socket.timeout(5000).emitWithAck("join", "room-a");
    await observer.timeout(5000).emitWithAck("join", "room-b");
    const view = mount(createElement(Online, { socket: observer, scope: { room: "room-a" }, label: "room" }));
    await waitFor("room-a", () => expect(view.text("room")).toBe("alice,observer"));
    view.root.render(createElement(Online, { socket: observer, scope: { room: "room-b" }, label: "room" }));
    await waitFor("room-b", () => expect(view.text("room")).toBe("observer"));
    // the new client's subscribe waits for the end of the turn (one batch per turn): the old one's unsubscribe may go first
    await waitFor("room-a's client closed", () => expect([...server!.requests].sort()).toEqual(["+room:room-a", "+room:room-b", "-room:room-a"]));
    await alice.timeout(5000).emitWithAck("join", "room-b");
    await waitFor("alice in room-b", () => expect(view.text("room")).toBe("alice,observer"));
  });

  it("follows a list of users, the same list in any order being one scope", async () => {
    server = await startPresenceServer();
    await user("alice");
    const observer = await user("observer");
    const view = mount(
      createElement(
        "div",
        null,
        createElement(Online, { socket: observer, scope: { userIds: ["alice", "carol"] }, label: "one" }),
        createElement(Online, { socket: observer, scope: { userIds: ["carol", "alice", "alice"] }, label: "two" }),
      ),
    );
    await waitFor("the list's state", () => expect([view.text("one"), view.text("two")]).toEqual(["alice", "alice"]));
    await user("carol");
    await user("dave");
    await waitFor("carol's join", () => expect([view.text("one"), view.text("two")]).toEqual(["alice,carol", "alice,carol"]));
    expect(server.requests).toEqual(["+users"]);
  });

  it("renders again only when the list changed: a resync that reads the same state renders nothing", async () => {
    server = await startPresenceServer();
    await user("alice");
    const observer = await user("observer");
    const renders: Array<readonly PresenceUser<object>[]> = [];
    const view = mount(createElement(Online, { socket: observer, label: "all", renders }));
    await waitFor("the first state", () => expect(view.text("all")).toBe("alice,observer"));
    server.presence.sync!.resync();
    await waitFor("the resubscribe", () => expect(server!.requests).toEqual(["+all", "+all"]));
    await user("bob");
    await waitFor("bob's join", () => expect(view.text("all")).toBe("alice,bob,observer"));
    // every render showed a new list: the empty one, the state, bob
    expect(renders.map(names)).toEqual(["", "alice,observer", "alice,bob,observer"]);
  });

  it("gives an empty list and count for a null socket, and on the server, where it creates no client", async () => {
    server = await startPresenceServer();
    const observer = await user("observer");
    const html = renderToString(createElement("div", null, createElement(Online, { socket: observer, label: "ssr" }), createElement(Count, { socket: observer })));
    expect(html).toBe('<div><p data-label="ssr"></p><p data-label="count">0</p></div>');
    const view = mount(createElement("div", null, createElement(Online, { socket: null, label: "none" }), createElement(Count, { socket: null })));
    await waitFor("the null socket's render", () => expect([view.text("none"), view.text("count")]).toEqual(["", "0"]));
    // a round trip on the socket: a subscribe sent by the server render would have arrived before it
    await observer.timeout(5000).emitWithAck("join", "room-x");
    expect(server.requests).toEqual([]);
  });
});
