import { Server } from "socket.io";
import { describe, expect, it } from "vitest";
import { createClusterQueryStore } from "./cluster-query-store";

describe("createClusterQueryStore options", () => {
  it("refuses misspelled and ill-typed options, as plain JavaScript, naming the closest option", () => {
    const io = new Server();
    const make = (options: unknown) => () => createClusterQueryStore(io, options as never);
    expect(make({ timeoutMS: 100 })).toThrow(/`timeoutMS` is not an option: did you mean `timeoutMs`\?/);
    expect(make({ timeoutMs: 0 })).toThrow(expect.objectContaining({ code: "INVALID_OPTION" }));
    expect(make({ allowPartial: "yes" })).toThrow(/allowPartial/);
    expect(make({ maxUserIdByte: 5 })).toThrow(/did you mean `maxUserIdBytes`/);
  });
});
