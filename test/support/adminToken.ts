// Admin tokens for test replicas: a fresh random token in a file (passed with
// --admin-token-file, never on the command line itself) and the header that carries it.
import { randomBytes } from "node:crypto";
import { writeFile } from "node:fs/promises";
import type { OutgoingHttpHeaders } from "node:http";
import { join } from "node:path";
import type { ReplicaFleet } from "./replicaProcess.js";

export interface AdminToken {
  readonly token: string;
  readonly file: string;
}

export async function writeAdminToken(fleet: ReplicaFleet): Promise<AdminToken> {
  const token = randomBytes(24).toString("hex");
  const file = join(await fleet.newDataDir(), "admin-token");
  await writeFile(file, `${token}\n`);
  return { token, file };
}

export function bearer(token: string): OutgoingHttpHeaders {
  return { authorization: `Bearer ${token}` };
}

/** The environment a test replica inherits: without the admin token settings of whoever runs the tests. */
export function environmentWithoutAdminToken(): NodeJS.ProcessEnv {
  const { ADMIN_TOKEN: _token, ADMIN_TOKEN_FILE: _file, ...rest } = process.env;
  return rest;
}
