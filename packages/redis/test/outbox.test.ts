import { expect, it } from "vitest";
import { parseOutboxEntry } from "../src/encoding";
import { resolveIncludes } from "../src/lua-includes";
import clock from "../src/scripts/includes/clock.lua";
import outbox from "../src/scripts/includes/outbox.lua";
import pack from "../src/scripts/includes/pack.lua";
import { random as seeded } from "./harness";
import { useRedis } from "./redis-fixture";

const redis = useRedis();
const INCLUDES = { "includes/clock.lua": clock, "includes/pack.lua": pack, "includes/outbox.lua": outbox };
const lua = (body: string) => resolveIncludes("test.lua", `--- @include "includes/outbox.lua"\n${body}`, INCLUDES);

const TRIM = lua(`outbox_trim(KEYS[1], tonumber(ARGV[1])) return redis.call('LRANGE', KEYS[1], 0, -1)`);
const PUSH_EACH = lua(`for i = 2, #ARGV do outbox_push(KEYS[1], KEYS[2], tonumber(ARGV[1]) + i - 2, '', ARGV[i]) end return redis.call('LRANGE', KEYS[1], 0, -1)`);
const PUSH_LEAVES = lua(`outbox_push_leaves(KEYS[1], KEYS[2], tonumber(ARGV[1]), { unpack(ARGV, 2) }) return redis.call('LRANGE', KEYS[1], 0, -1)`);

it("trims an outbox to the entries above `through`, whatever the gaps between ids", async () => {
  const random = seeded(7);
  for (let round = 0; round < 300; round++) {
    const ids: number[] = [];
    for (let id = 0, n = Math.floor(random() * 40); ids.length < n; ) ids.push((id += 1 + Math.floor(random() * 5)));
    const key = `outbox-${round}`;
    if (ids.length) await redis.admin.rpush(key, ...ids.map((id) => `${id}|1|0:u${id}`));
    const through = Math.floor(random() * ((ids.at(-1) ?? 0) + 3));
    const left = (await redis.admin.eval(TRIM, 1, key, through)) as string[];
    expect(left, `ids ${ids.join(",")} through ${through}`).toEqual(ids.filter((id) => id > through).map((id) => `${id}|1|0:u${id}`));
  }
});

it("writes a chunk's leaves in one entry that reads as one push each would, versions in order", async () => {
  const users = Array.from({ length: 2_345 }, (_, i) => (i % 7 === 0 ? `ユーザー:${i}|` : `user-${i}`));
  await redis.admin.set("ids-a", 41);
  await redis.admin.set("ids-b", 41);
  const each = (await redis.admin.eval(PUSH_EACH, 2, "each", "ids-a", 1_700_000_000_000_000, ...users)) as string[];
  const together = (await redis.admin.eval(PUSH_LEAVES, 2, "together", "ids-b", 1_700_000_000_000_000, ...users)) as string[];
  expect(together).toHaveLength(1);
  const [run] = together.map(parseOutboxEntry);
  expect(run!.id).toBe(42); // one id for the run, above the ones before
  expect(run!.transitions).toEqual(each.map(parseOutboxEntry).flatMap((entry) => entry.transitions));
});
