import type { Transition } from "@presence/core";
import { afterEach, expect, it, vi } from "vitest";
import { DeliveryOrder, REMEMBERED } from "./delivery-order";

afterEach(() => vi.useRealTimers());

/** What the order lets through, as "type user@version#number". */
function deliver(order: DeliveryOrder, transitions: Transition[]): string[] {
  const out: string[] = [];
  for (const transition of transitions) {
    const admitted = order.admit(transition);
    if (!admitted) continue;
    const { transition: t, seq } = admitted;
    const info = "info" in t && t.info !== undefined ? ` ${JSON.stringify(t.info)}` : "";
    out.push(`${t.type} ${"room" in t ? `${t.room}/` : ""}${t.userId}@${t.version}#${seq}${info}`);
  }
  return out;
}

it("numbers what it delivers, dropping a transition older than the last of its user or room member", () => {
  const order = new DeliveryOrder();
  expect(
    deliver(order, [
      { type: "connected", userId: "a", version: 10 },
      { type: "connected", userId: "b", version: 900 }, // another decider: far ahead
      { type: "disconnected", userId: "a", version: 12 },
      { type: "connected", userId: "a", version: 11 }, // late
      { type: "joined", room: "r", userId: "a", version: 11 }, // another subject: not late
      { type: "disconnected", userId: "b", version: 900 }, // repeated
    ]),
  ).toEqual(["connected a@10#1", "connected b@900#2", "disconnected a@12#3", "joined r/a@11#4"]);
  expect(order.seq).toBe(4);
});

it("delivers an update that overtook its user's connect as that connect, and drops the connect", () => {
  const order = new DeliveryOrder();
  expect(
    deliver(order, [
      { type: "updated", userId: "u", info: { name: "B" }, version: 6 },
      { type: "connected", userId: "u", info: { name: "A" }, version: 5 },
      { type: "disconnected", userId: "u", version: 8 },
      { type: "updated", userId: "u", info: { name: "C" }, version: 7 }, // older than the leave: late
      { type: "updated", userId: "u", info: { name: "D" }, version: 10 }, // after the leave: the join before it is on its way
    ]),
  ).toEqual(['connected u@6#1 {"name":"B"}', "disconnected u@8#2", 'connected u@10#3 {"name":"D"}']);
});

it("gives a room join that arrives after a newer update of its user that update's info", () => {
  const order = new DeliveryOrder();
  expect(
    deliver(order, [
      { type: "connected", userId: "u", info: { name: "A" }, version: 10 },
      { type: "updated", userId: "u", info: { name: "B" }, version: 12 },
      { type: "joined", room: "r", userId: "u", info: { name: "A" }, version: 11 },
      { type: "joined", room: "s", userId: "u", info: { name: "B" }, version: 13 },
    ]),
  ).toEqual(['connected u@10#1 {"name":"A"}', 'updated u@12#2 {"name":"B"}', 'joined r/u@11#3 {"name":"B"}', 'joined s/u@13#4 {"name":"B"}']);
});

it("says so (once a while) when it must forget a subject too soon after its last transition", () => {
  vi.useFakeTimers({ toFake: ["Date"] });
  let forgot = 0;
  const order = new DeliveryOrder(() => forgot++);
  for (let i = 0; i < REMEMBERED; i++) order.admit({ type: "connected", userId: `u${i}`, version: 1 });
  expect(forgot).toBe(0);
  order.admit({ type: "connected", userId: "one-too-many", version: 1 });
  order.admit({ type: "connected", userId: "two-too-many", version: 1 });
  expect(forgot).toBe(1); // the views read their state again; not once per subject
  expect(order.last("u:u0")).toBeUndefined();
  vi.setSystemTime(Date.now() + 60_000); // what is forgotten now is old: nothing late can still be on its way
  order.admit({ type: "connected", userId: "three-too-many", version: 1 });
  expect(forgot).toBe(1);
});
