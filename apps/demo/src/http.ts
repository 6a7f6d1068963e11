import { fileURLToPath } from "node:url";
import fastifyStatic from "@fastify/static";
import { PresenceError, assertUserId, serializeUserInfo, type UserInfo, type UserPresence } from "@presence/core";
import type { Presence } from "@presence/socketio";
import Fastify, { type FastifyInstance } from "fastify";
import { CHANNEL_NAME, CHANNEL_NAME_RULE } from "./channels";
import { clientAddress } from "./client-address";
import type { DemoConfig } from "./config";
import { connectionLimits, serverOptions } from "./connection-limits";
import type { DemoLimits } from "./limits";
import type { DemoMetrics } from "./metrics";
import type { TokenSigner } from "./token";

/** The largest request body: a login is a user id and a little info. */
export const MAX_BODY_BYTES = 16 * 1024;

/** An error with the HTTP status to answer it with. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** What a user shows others in the demo: `{ name?, status? }`, strings of up to 64 characters. */
export function parseInfo(value: unknown): UserInfo | undefined {
  if (value === undefined) return undefined;
  try {
    serializeUserInfo(value); // a plain JSON object within 1 KB, or InvalidUserInfoError
  } catch (error) {
    throw new HttpError(400, (error as Error).message);
  }
  const { name, status, ...rest } = value as Record<string, unknown>;
  if (Object.keys(rest).length > 0) throw new HttpError(400, "info takes only name and status");
  for (const [key, field] of Object.entries({ name, status })) {
    if (field !== undefined && (typeof field !== "string" || field.length > 64)) {
      throw new HttpError(400, `info.${key} must be a string of at most 64 characters`);
    }
  }
  return { ...(name === undefined ? {} : { name }), ...(status === undefined ? {} : { status }) };
}

/** Every user of a list, tolerating a cluster-query node that did not answer (marked partial). */
async function collect(pages: AsyncIterable<UserPresence[]>): Promise<{ users: UserPresence[]; partial: boolean }> {
  const users: UserPresence[] = [];
  try {
    for await (const page of pages) users.push(...page);
    return { users, partial: false };
  } catch (error) {
    const partial = (error as { partial?: unknown }).partial;
    if (error instanceof PresenceError && error.code === "NODES_UNRESPONSIVE" && Array.isArray(partial)) {
      return { users: partial as UserPresence[], partial: true };
    }
    throw error;
  }
}

const loginBody = {
  type: "object",
  // the user id's own rules (non-empty, at most 256 UTF-8 bytes) are core's, with core's messages
  properties: { userId: {}, info: { type: "object" } },
  required: ["userId"],
} as const;

export interface HttpOptions {
  config: DemoConfig;
  /** The binding, once the app made it; `undefined` when presence is off. */
  presence: () => Presence | undefined;
  signer: TokenSigner;
  limits: DemoLimits;
  metrics: DemoMetrics;
  /** Problems that make this process degraded (Redis lost), for `/api/health`. */
  problems: () => string[];
}

/**
 * The demo's HTTP side on Fastify: its body limit and schema validation give
 * clear 400s and 413s without the hand-written body reader's pitfalls (a
 * refused body leaves the keep-alive connection usable), the page is served
 * as static files, and each request is logged as one structured line.
 */
export function createHttp({ config, presence, signer, limits, metrics, problems }: HttpOptions): FastifyInstance {
  const app = Fastify({
    logger: { level: config.logLevel },
    bodyLimit: MAX_BODY_BYTES,
    // answers during a graceful shutdown get `connection: close`
    return503OnClosing: true,
    // how often Node looks for late requests; the timeouts and the cap are set on the server (connection-limits.ts)
    http: serverOptions(connectionLimits(config)),
  });

  // every body is JSON, whatever its content type claims: anything else is a clear 400, never a 415
  app.removeAllContentTypeParsers();
  app.addContentTypeParser("*", { parseAs: "string" }, (_req, body, done) => {
    if (body === "") return done(null, undefined);
    try {
      done(null, JSON.parse(body as string));
    } catch {
      done(new HttpError(400, "body must be JSON"), undefined);
    }
  });

  app.setErrorHandler((error: Error & { statusCode?: number; validation?: unknown; code?: string }, request, reply) => {
    if (error instanceof HttpError) return reply.code(error.status).send({ error: error.message });
    if (error instanceof PresenceError && !error.retryable) return reply.code(400).send({ error: error.message });
    if (error.validation) return reply.code(400).send({ error: error.message });
    if (error.code === "FST_ERR_CTP_BODY_TOO_LARGE") return reply.code(413).send({ error: `body over ${MAX_BODY_BYTES} bytes` });
    if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
      return reply.code(error.statusCode).send({ error: error.message });
    }
    request.log.error({ err: error }, "request failed");
    metrics.errors.inc({ code: error instanceof PresenceError ? error.code : "HTTP_500" });
    return reply.code(503).send({ error: "presence is unavailable right now" });
  });
  app.setNotFoundHandler((_request, reply) => reply.code(404).send({ error: "not found" }));

  app.register(fastifyStatic, { root: fileURLToPath(new URL("../public", import.meta.url)), prefix: "/", cacheControl: false });
  const client = clientBundle();
  app.get("/vendor/presence-client.js", (_request, reply) => {
    if (!client) throw new HttpError(404, "@presence/client is not installed");
    return reply.type("text/javascript; charset=utf-8").sendFile(client.file, client.dir);
  });

  app.get("/api/health", async () => {
    const degraded = problems();
    return { ok: degraded.length === 0, mode: config.mode, pid: process.pid, ...(degraded.length ? { degraded } : {}) };
  });

  app.post("/api/login", { schema: { body: loginBody } }, async (request, reply) => {
    const address = clientAddress(request.raw.socket.remoteAddress, request.headers["x-forwarded-for"], config.trustProxy);
    if (!(await limits.login(address))) {
      metrics.refused.inc({ reason: "login rate limited" });
      throw new HttpError(429, "too many logins from this address: try again in a minute");
    }
    const { userId, info } = request.body as { userId: unknown; info?: unknown };
    assertUserId(userId);
    const parsed = parseInfo(info);
    return reply.header("cache-control", "no-store").send({ token: await signer.sign(userId, parsed) });
  });

  const tracked = (): Presence => {
    const binding = presence();
    if (!binding) throw new HttpError(503, "presence is off");
    return binding;
  };

  // any signed-in user may read presence (the demo's channels are public); nobody else
  app.register(async (routes) => {
    routes.addHook("onRequest", async (request, reply) => {
      const token = /^Bearer ([^\s]+)$/i.exec(request.headers.authorization ?? "")?.[1];
      if (token !== undefined && (await signer.verify(token))) return;
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="presence"')
        .send({ error: "sign in first: send Authorization: Bearer <token>, with a token from POST /api/login" });
    });

    routes.get("/api/presence", async () => {
      const { users, partial } = await collect(tracked().users({ pageSize: 500 }));
      return {
        count: users.length,
        users: users.map((u) => u.userId),
        connections: Object.fromEntries(users.map((u) => [u.userId, u.connections])),
        info: Object.fromEntries(users.flatMap((u) => (u.info ? [[u.userId, u.info]] : []))),
        ...(partial ? { partial } : {}),
      };
    });

    routes.get<{ Params: { userId: string } }>("/api/presence/:userId", async (request) => {
      const { userId } = request.params;
      assertUserId(userId);
      return { userId, online: await tracked().isUserConnected(userId) };
    });

    // a channel by the client's name (presence tracks it so: see channels.ts)
    routes.get<{ Params: { room: string } }>("/api/rooms/:room/presence", async (request) => {
      const { room } = request.params;
      if (!CHANNEL_NAME.test(room)) throw new HttpError(400, CHANNEL_NAME_RULE);
      const { users, partial } = await collect(tracked().roomUsers(room, { pageSize: 500 }));
      return {
        count: users.length,
        users: users.map(({ userId, info }) => ({ userId, info: info ?? {} })),
        ...(partial ? { partial } : {}),
      };
    });
  });

  return app;
}

/** The ESM build of @presence/client, served to the page as it is: the page has no build step. */
function clientBundle(): { dir: string; file: string } | undefined {
  try {
    const path = fileURLToPath(import.meta.resolve("@presence/client"));
    const slash = path.lastIndexOf("/");
    return { dir: path.slice(0, slash), file: path.slice(slash + 1) };
  } catch {
    return undefined;
  }
}
