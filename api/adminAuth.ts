// The admin token check. Added as an onRequest hook to a route group, it guards
// every route of that group that is not a read (GET, HEAD): the routes added to the
// group later are guarded too. Closed by default: without a configured token, every
// admin request is refused.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyReply, FastifyRequest, onRequestAsyncHookHandler } from "fastify";

/** Methods that only read, open to anyone who reaches the HTTP port. */
const readMethods: ReadonlySet<string> = new Set(["GET", "HEAD"]);
/** `Bearer <token>`; the scheme name is case-insensitive (RFC 7235). */
const bearerPattern = /^Bearer +(\S+) *$/i;
const realm = 'Bearer realm="escrow-shop admin"';

export const adminTokenMissingMessage =
  "admin routes are closed: this replica has no admin token; start it with ADMIN_TOKEN, ADMIN_TOKEN_FILE or --admin-token-file";

export function adminAuth(adminToken: string | undefined): onRequestAsyncHookHandler {
  // Compare digests: equal lengths for timingSafeEqual, and the time taken says
  // nothing about the token's length or its first differing character.
  const tokenDigest = adminToken === undefined ? undefined : sha256(adminToken);
  return async (request: FastifyRequest, reply: FastifyReply) => {
    if (readMethods.has(request.method)) return;
    if (tokenDigest === undefined) return refuse(reply, realm, adminTokenMissingMessage);
    const presented = bearerPattern.exec(request.headers.authorization ?? "")?.[1];
    if (presented === undefined) return refuse(reply, realm, "an admin route needs the admin token: send Authorization: Bearer <token>");
    if (!timingSafeEqual(sha256(presented), tokenDigest)) {
      return refuse(reply, `${realm}, error="invalid_token"`, "wrong admin token");
    }
  };
}

function refuse(reply: FastifyReply, challenge: string, message: string): FastifyReply {
  return reply.code(401).header("www-authenticate", challenge).send({ error: message });
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
