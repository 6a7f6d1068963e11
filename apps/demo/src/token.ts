import { createHmac, timingSafeEqual } from "node:crypto";

/** Demo-grade tokens: base64url(JSON claims) "." base64url(HMAC-SHA256). */
export interface TokenClaims {
  sub: string;
  /** Expiry, ms since the epoch. */
  exp: number;
  /** What the user shows others, as given at login. */
  info?: { [key: string]: unknown };
}

const DAY_MS = 24 * 60 * 60 * 1000;

const sign = (payload: string, secret: string) => createHmac("sha256", secret).update(payload).digest("base64url");

export function signToken(userId: string, secret: string, ttlMs = DAY_MS, now = Date.now(), info?: TokenClaims["info"]): string {
  const claims: TokenClaims = info === undefined ? { sub: userId, exp: now + ttlMs } : { sub: userId, exp: now + ttlMs, info };
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `${payload}.${sign(payload, secret)}`;
}

/** The claims of a valid, unexpired token; `undefined` for anything else. */
export function verifyToken(token: unknown, secret: string, now = Date.now()): TokenClaims | undefined {
  if (typeof token !== "string" || token.length > 4096) return undefined;
  const [payload, signature, extra] = token.split(".");
  if (!payload || !signature || extra !== undefined) return undefined;
  const expected = Buffer.from(sign(payload, secret));
  const given = Buffer.from(signature);
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as Partial<TokenClaims>;
    if (typeof claims.sub !== "string" || typeof claims.exp !== "number" || claims.exp <= now) return undefined;
    const info = claims.info !== null && typeof claims.info === "object" && !Array.isArray(claims.info) ? claims.info : undefined;
    return info === undefined ? { sub: claims.sub, exp: claims.exp } : { sub: claims.sub, exp: claims.exp, info };
  } catch {
    return undefined;
  }
}
