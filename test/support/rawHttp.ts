// HTTP/1.1 over a bare TCP socket, for fuzz tests: any bytes in the request line,
// headers and body (Node's http client refuses odd paths and header values before
// they leave). One request per connection; the answer is read until the server
// closes, and its status line, content type and body are picked out.
import { connect } from "node:net";

export interface RawAnswer {
  /** Status of the final answer (after any 1xx), or null when the server closed without one. */
  readonly status: number | null;
  /** The content-type header, "" when absent. */
  readonly contentType: string;
  readonly body: string;
}

const answerWaitMsMax = 10_000;
/** Most answer bytes kept: every answer of this API is small. */
const answerBytesMax = 1024 * 1024;

/** Sends `request` (already encoded) to 127.0.0.1:`port` and reads the answer until the server closes. */
export function rawRequest(port: number, request: Buffer): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port });
    const chunks: Buffer[] = [];
    let received = 0;
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no end of answer within ${answerWaitMsMax} ms; got: ${Buffer.concat(chunks).toString("latin1").slice(0, 300)}`));
    }, answerWaitMsMax);
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (received <= answerBytesMax) chunks.push(chunk);
    });
    // A reset after a complete answer is fine (the server refused to read the rest).
    socket.on("error", () => undefined);
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(parseAnswer(Buffer.concat(chunks)));
    });
    socket.write(request);
  });
}

/** An encoded request: `head` lines joined with CRLF, a blank line, then `body`. */
export function encodeRequest(requestLine: string, headers: readonly (readonly [string, string])[], body: Buffer): Buffer {
  const head = [requestLine, ...headers.map(([name, value]) => `${name}: ${value}`)].join("\r\n");
  // latin1 keeps each char below 256 as one byte, so tests can put raw bytes in the head.
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, "latin1"), body]);
}

/** The final (non-1xx) answer in `bytes`. */
export function parseAnswer(bytes: Buffer): RawAnswer {
  let rest = bytes;
  for (;;) {
    const headEnd = rest.indexOf("\r\n\r\n");
    if (headEnd < 0) return { status: null, contentType: "", body: rest.toString("latin1") };
    const lines = rest.subarray(0, headEnd).toString("latin1").split("\r\n");
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(lines[0] ?? "")?.[1] ?? NaN);
    if (!Number.isInteger(status)) return { status: null, contentType: "", body: rest.toString("latin1") };
    rest = rest.subarray(headEnd + 4);
    if (status >= 100 && status < 200) continue;
    const header = (name: string): string =>
      lines
        .find((line) => line.toLowerCase().startsWith(`${name}:`))
        ?.slice(name.length + 1)
        .trim() ?? "";
    const length = header("content-length");
    // The server may answer once more after the body (to bytes it could not parse): keep the first answer.
    const body = header("transfer-encoding").toLowerCase() === "chunked" ? unchunk(rest) : /^\d+$/.test(length) ? rest.subarray(0, Number(length)) : rest;
    return { status, contentType: header("content-type"), body: body.toString("utf8") };
  }
}

function unchunk(bytes: Buffer): Buffer {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = bytes.indexOf("\r\n", at);
    if (lineEnd < 0) break;
    const size = parseInt(bytes.subarray(at, lineEnd).toString("latin1"), 16);
    if (!(size > 0)) break;
    parts.push(bytes.subarray(lineEnd + 2, lineEnd + 2 + size));
    at = lineEnd + 2 + size + 2;
  }
  return Buffer.concat(parts);
}
