// A minimal HTTP client for the scripts: one request per fresh connection
// (`agent: false`, as the course's benchmark makes them), a bounded total time,
// and an outcome instead of an exception, so a caller can count timeouts and
// connection errors as "unknown" rather than abort.
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";

export type HttpOutcome =
  | { readonly kind: "answer"; readonly status: number; readonly text: string; readonly ms: number }
  | { readonly kind: "timeout"; readonly ms: number }
  | { readonly kind: "error"; readonly message: string; readonly ms: number };

/** Bodies longer than this are cut (a find answer is a few hundred bytes). */
const bodyCharsMax = 1024 * 1024;

/**
 * Splits "http://a:1,http://b:2" and repeated values into a list of base URLs and
 * checks them; throws with a clear message on anything that is not http(s).
 */
export function parseBaseUrls(values: readonly string[]): string[] {
  const urls = values
    .flatMap((value) => value.split(","))
    .map((value) => value.trim())
    .filter((value) => value !== "");
  for (const url of urls) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      throw new Error(`not a URL: "${url}"`);
    }
    if (parsed.protocol !== "http:" && parsed.protocol !== "https:") throw new Error(`not an http(s) URL: "${url}"`);
  }
  return urls.map((url) => url.replace(/\/+$/, ""));
}

/** A 2xx answer. */
export function isOk(outcome: HttpOutcome): outcome is Extract<HttpOutcome, { kind: "answer" }> {
  return outcome.kind === "answer" && outcome.status >= 200 && outcome.status < 300;
}

/** One line for an error message: the status and the start of the body, or why there was no answer. */
export function describeOutcome(outcome: HttpOutcome): string {
  if (outcome.kind === "answer") return `${outcome.status} ${outcome.text.slice(0, 200)}`;
  return outcome.kind === "timeout" ? `timeout after ${Math.round(outcome.ms)} ms` : `error ${outcome.message}`;
}

/**
 * Sends one request to `baseUrl` + `path` on a new connection. Never rejects: the
 * outcome is an answer (any status), a timeout (no full answer within
 * `timeoutMs`, counted from the start), or a connection error. `ms` is measured
 * with the monotonic high-resolution clock.
 */
export function send(baseUrl: string, method: string, path: string, timeoutMs: number): Promise<HttpOutcome> {
  const target = new URL(baseUrl + path);
  const request = target.protocol === "https:" ? httpsRequest : httpRequest;
  const started = process.hrtime.bigint();
  const elapsedMs = (): number => Number(process.hrtime.bigint() - started) / 1e6;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (outcome: HttpOutcome): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const outgoing = request(
      {
        protocol: target.protocol,
        hostname: target.hostname,
        port: target.port,
        path: target.pathname + target.search,
        method,
        agent: false,
        headers: { "content-length": "0" },
      },
      (response) => {
        const chunks: Buffer[] = [];
        let length = 0;
        response.on("data", (chunk: Buffer) => {
          if (length < bodyCharsMax) chunks.push(chunk);
          length += chunk.length;
        });
        response.on("error", (error) => finish({ kind: "error", message: error.message, ms: elapsedMs() }));
        response.on("end", () => finish({ kind: "answer", status: response.statusCode ?? 0, text: Buffer.concat(chunks).toString("utf8"), ms: elapsedMs() }));
      },
    );
    const timer = setTimeout(() => {
      finish({ kind: "timeout", ms: elapsedMs() });
      outgoing.destroy();
    }, timeoutMs);
    outgoing.on("error", (error: NodeJS.ErrnoException) => finish({ kind: "error", message: error.code ?? error.message, ms: elapsedMs() }));
    outgoing.end();
  });
}

/** Spreads requests over several base URLs, one after another (round robin per request). */
export class RoundRobin {
  private next = 0;

  constructor(private readonly urls: readonly string[]) {
    if (urls.length === 0) throw new Error("no URL given");
  }

  pick(): string {
    const url = this.urls[this.next % this.urls.length];
    this.next++;
    if (url === undefined) throw new Error("no URL given");
    return url;
  }
}

/**
 * Runs `task(i)` for i in 0..count-1 with at most `concurrency` of them in flight.
 * If a task throws, no new task starts; the first error is thrown once the tasks
 * in flight have ended (so nothing is left running behind the caller's back).
 */
export async function runPool(count: number, concurrency: number, task: (index: number) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | null = null;
  const worker = async (): Promise<void> => {
    while (failure === null && next < count) {
      const index = next++;
      try {
        await task(index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(concurrency, count)) }, worker));
  if (failure !== null) throw (failure as { error: unknown }).error;
}
