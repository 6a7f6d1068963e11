import { InvalidOptionError } from "@presence/core";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { RedisStore, type RedisStoreOptions } from "../src";

// never connects: options are checked before the store makes its connection
const redis = new Redis({ lazyConnect: true });
afterAll(() => redis.disconnect());

describe("RedisStore options", () => {
  it.each([
    ["buckets", 0],
    ["buckets", 1025],
    ["buckets", 2.5],
    ["maxBatchSize", 0],
    ["maxBatchSize", -5],
    ["maxBatchSize", Number.NaN],
    ["maxBatchSize", 1.5],
    ["cleanupChunkSize", 0],
    ["heartbeatMs", Number.POSITIVE_INFINITY],
    ["commandTimeoutMs", "1000"],
    ["leaseTimeoutMs", 100], // not longer than the default heartbeatMs
    ["prefix", ""],
    ["prefix", "a{b}"],
  ] as Array<[keyof RedisStoreOptions, unknown]>)("refuses %s = %s with an InvalidOptionError naming it", (option, value) => {
    const make = () => new RedisStore({ redis, [option]: value } as unknown as RedisStoreOptions);
    expect(make).toThrow(InvalidOptionError);
    expect(make).toThrow(expect.objectContaining({ code: "INVALID_OPTION", option }));
  });

  it.each([
    ["heartbeatMS", "heartbeatMs"],
    ["leaseTimeout", "leaseTimeoutMs"],
    ["prefx", "prefix"],
    ["cleanupChunk", "cleanupChunkSize"],
  ])("refuses the unknown option %s, suggesting %s", (option, suggestion) => {
    const make = () => new RedisStore({ redis, [option]: 1 } as unknown as RedisStoreOptions);
    expect(make).toThrow(InvalidOptionError);
    expect(make).toThrow(expect.objectContaining({ code: "INVALID_OPTION", option }));
    expect(make).toThrow(`did you mean \`${suggestion}\`?`);
  });

  it("refuses an unknown option with nothing close, listing the known ones", () => {
    expect(() => new RedisStore({ redis, zzzzzzzz: 1 } as unknown as RedisStoreOptions)).toThrow(/`zzzzzzzz` is not an option \(known: redis, prefix, buckets, heartbeatMs/);
  });

  it("names the option and the value it refuses", () => {
    expect(() => new RedisStore({ redis, heartbeatMs: -1 })).toThrow("RedisStore: `heartbeatMs` must be a positive integer, got -1");
  });

  it("names the supported versions for a client of another version (node-redis 3's callback API)", () => {
    const legacy = { send_command: () => {}, connected: true };
    expect(() => new RedisStore({ redis: legacy } as unknown as RedisStoreOptions)).toThrow(/redis 4, 5 or 6\); got Object \(a client of another version/);
  });

  it.each([[undefined], [{}], [{ get: () => {} }], ["redis://127.0.0.1:6379"]])("refuses a client of another kind (%s) with a TypeError saying what is accepted", (client) => {
    expect(() => new RedisStore({ redis: client } as unknown as RedisStoreOptions)).toThrow(TypeError);
    expect(() => new RedisStore({ redis: client } as unknown as RedisStoreOptions)).toThrow(/ioredis client .*ioredis 5 or 6.*node-redis client .*redis 4, 5 or 6/);
  });
});
