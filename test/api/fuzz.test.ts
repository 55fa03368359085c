// Fuzz of the HTTP API against a real replica process (API.md, G2): random request
// lines (known route shapes with random segments, unknown routes, odd characters,
// percent-encodings, very long segments), numbers in every wrong notation, methods,
// headers, content types and bodies, sent as raw bytes over TCP. Properties:
//   - never a 5xx, and always an answer;
//   - the replica never crashes: it still answers afterwards;
//   - a 4xx changes nothing: the seeded items, users and orders read back exactly
//     as before, and the replica's durable batch number (GET /cluster durableSeq,
//     which moves with every change of any key) did not move.
// The reads wait for durability (Replica.read), so the batch number is read after
// them and a change made by a refused request cannot hide in an open batch.
import { Agent, request as httpRequest } from "node:http";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RawAnswer, encodeRequest, rawRequest } from "../support/rawHttp.js";
import { type ReplicaProcess, ReplicaFleet } from "../support/replicaProcess.js";
import { ShopClient } from "../support/shopClient.js";

const fleet = new ReplicaFleet();
let replica: ReplicaProcess;
/** Keys whose state is read back around every request. */
let watched: { items: string[]; users: string[]; orders: string[] };
const readAgent = new Agent({ keepAlive: true, maxSockets: 16 });

beforeAll(async () => {
  replica = await fleet.start();
  const shop = new ShopClient(replica);
  await shop.ok("/stock/batch_init/3/50/4");
  await shop.ok("/payment/batch_init/3/100");
  await shop.ok("/orders/batch_init/3/3/3/4");
  const stocked = await shop.stockedItem(5, 100);
  const empty = await shop.createItem(7);
  const rich = await shop.fundedUser(1_000);
  const poor = await shop.createUser();
  const open = await shop.orderWith(rich, [
    [stocked, 2],
    ["1", 1],
  ]);
  const paid = await shop.orderWith(rich, [[stocked, 1]]);
  await shop.ok(`/orders/checkout/${paid}`);
  const unpayable = await shop.orderWith(poor, [[stocked, 1]]);
  watched = {
    items: ["0", "1", "2", stocked, empty],
    users: ["0", "1", "2", rich, poor],
    orders: ["0", "1", "2", open, paid, unpayable],
  };
});
afterAll(async () => {
  readAgent.destroy();
  await fleet.cleanup();
});

// ---- what the replica holds

function readText(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const outgoing = httpRequest({ host: "127.0.0.1", port: replica.port, path, agent: readAgent, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve(`${response.statusCode} ${Buffer.concat(chunks).toString("utf8")}`));
      response.on("error", reject);
    });
    outgoing.on("timeout", () => outgoing.destroy(new Error(`GET ${path}: no answer`)));
    outgoing.on("error", reject);
    outgoing.end();
  });
}

/** Every watched key as read now, then the durable batch number. */
async function snapshot(): Promise<string[]> {
  const paths = [
    ...watched.items.map((id) => `/stock/find/${id}`),
    ...watched.users.map((id) => `/payment/find_user/${id}`),
    ...watched.orders.map((id) => `/orders/find/${id}`),
  ];
  const reads = await Promise.all(paths.map((path) => readText(path)));
  const { durableSeq } = JSON.parse((await readText("/cluster")).slice(4)) as { durableSeq: number };
  return [...reads, `durableSeq ${durableSeq}`];
}

// ---- the requests

interface FuzzRequest {
  readonly method: string;
  readonly target: string;
  readonly version: string;
  readonly headers: readonly (readonly [string, string])[];
  readonly body: Buffer;
  readonly chunked: "no" | "yes" | "broken";
}

/** Bytes as the replica receives them: a JS string of chars < 256 is sent one byte each. */
const rawUtf8 = (text: string): string => Buffer.from(text, "utf8").toString("latin1");

const oddSegments = [
  "",
  ".",
  "..",
  "%",
  "%zz",
  "%2",
  "%2F",
  "%2f%2e%2e",
  "%00",
  "%0A",
  "%C0%AF",
  "%FF%FE",
  "%E2%82%AC",
  "%F0%9F%98%80",
  "a b",
  "a\tb",
  "a%20b",
  "<script>",
  "'",
  '"',
  "\\",
  "a;b",
  "a?b",
  "a#b",
  "~",
  "*",
  "%2e%2e",
  "null",
  "undefined",
  "__proto__",
  "constructor",
  "toString",
  "hasOwnProperty",
  "\u0000",
  "\x7f",
  "\x80\xff",
];

const idArb = (seeded: readonly string[]): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 10, arbitrary: fc.constantFrom(...seeded) },
    { weight: 2, arbitrary: fc.constantFrom("0", "1", "2", "3", "999", "-1", "00", "1.0") },
    { weight: 2, arbitrary: fc.uuid() },
    { weight: 2, arbitrary: fc.string({ maxLength: 24, unit: "grapheme" }).map(encodeURIComponent) },
    { weight: 1, arbitrary: fc.string({ maxLength: 12, unit: "binary" }).map(rawUtf8) },
    { weight: 2, arbitrary: fc.constantFrom(...oddSegments) },
    { weight: 1, arbitrary: fc.integer({ min: 120, max: 210 }).map((length) => "x".repeat(length)) },
    { weight: 1, arbitrary: fc.constantFrom(1_000, 5_000, 20_000).map((length) => "y".repeat(length)) },
  );

const unicodeDigits = ["١", "٢", "٣", "０", "１", "９", "²", "𝟙", "߁", "৪", "๓", "Ⅻ", "½"];

/** Numbers: valid small ones (batch_init stays cheap), bounds, and every wrong notation. */
const numberArb: fc.Arbitrary<string> = fc.oneof(
  { weight: 12, arbitrary: fc.nat(999).map(String) },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      "0",
      "1",
      "9007199254740991",
      "9007199254740992",
      "9007199254740993",
      "4503599627370496",
      "99999999999999999",
      "0000000000000001",
      "00000000000000001",
      "1000001",
      "1000000000",
      "-0",
      "-1",
      "+1",
      " 1",
      "1 ",
      "1.5",
      "1.0",
      "1.",
      ".5",
      "1e3",
      "1E3",
      "1e-3",
      "0x1F",
      "0X10",
      "0b1",
      "0o7",
      "1_000",
      "1n",
      "Infinity",
      "-Infinity",
      "NaN",
      "",
      "%31",
      "%31%30",
      "%2D1",
      "%2B1",
      "%20",
      "1%00",
      "1,5",
      "١٢",
      "０",
      "²",
      "0.0000001",
      "1e400",
      "-1e400",
    ),
  },
  {
    weight: 2,
    arbitrary: fc
      .tuple(fc.integer({ min: 1, max: 9 }), fc.string({ unit: fc.constantFrom(..."0123456789"), minLength: 6, maxLength: 29 }))
      .map(([first, rest]) => `${first}${rest}`),
  },
  { weight: 1, arbitrary: fc.integer({ min: -1_000_000_000, max: -1 }).map(String) },
  { weight: 2, arbitrary: fc.double().map(String) },
  { weight: 1, arbitrary: fc.nat(999).map((n) => `0x${n.toString(16)}`) },
  { weight: 1, arbitrary: fc.nat(999).map((n) => [...String(n)].map((digit) => `%3${digit}`).join("")) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...unicodeDigits), { minLength: 1, maxLength: 4 }).map((digits) => encodeURIComponent(digits.join(""))) },
  { weight: 1, arbitrary: fc.array(fc.constantFrom(...unicodeDigits), { minLength: 1, maxLength: 4 }).map((digits) => rawUtf8(digits.join(""))) },
);

type Slot = "id" | "number";
const routes: readonly { readonly method: string; readonly parts: readonly (string | Slot)[] }[] = [
  { method: "POST", parts: ["stock", "item", "create", "number"] },
  { method: "POST", parts: ["stock", "batch_init", "number", "number", "number"] },
  { method: "GET", parts: ["stock", "find", "id"] },
  { method: "POST", parts: ["stock", "add", "id", "number"] },
  { method: "POST", parts: ["stock", "subtract", "id", "number"] },
  { method: "POST", parts: ["payment", "create_user"] },
  { method: "POST", parts: ["payment", "batch_init", "number", "number"] },
  { method: "GET", parts: ["payment", "find_user", "id"] },
  { method: "POST", parts: ["payment", "add_funds", "id", "number"] },
  { method: "POST", parts: ["payment", "pay", "id", "number"] },
  { method: "POST", parts: ["orders", "create", "id"] },
  { method: "POST", parts: ["orders", "batch_init", "number", "number", "number", "number"] },
  { method: "GET", parts: ["orders", "find", "id"] },
  { method: "POST", parts: ["orders", "addItem", "id", "id", "number"] },
  { method: "POST", parts: ["orders", "checkout", "id"] },
  { method: "GET", parts: ["cluster"] },
];

const oddMethods = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO", "get", "P0ST", "PRI", "M-SEARCH", "PROPFIND"];

function segmentArb(slot: string | Slot, ids: fc.Arbitrary<string>): fc.Arbitrary<string> {
  if (slot === "id") return fc.oneof({ weight: 5, arbitrary: ids }, { weight: 1, arbitrary: numberArb });
  if (slot === "number") return fc.oneof({ weight: 5, arbitrary: numberArb }, { weight: 1, arbitrary: ids });
  return fc.oneof(
    { weight: 12, arbitrary: fc.constant(slot) },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        slot.toUpperCase(),
        `${slot}%20`,
        encodeURIComponent(slot).replace(/[a-z]/, (c) => `%${c.charCodeAt(0).toString(16)}`),
      ),
    },
  );
}

/** A known route: its method (mostly) and its path with random segments, sometimes bent. */
function knownRouteArb(ids: fc.Arbitrary<string>): fc.Arbitrary<{ method: string; target: string }> {
  return fc.constantFrom(...routes).chain((route) =>
    fc
      .record({
        method: fc.oneof({ weight: 8, arbitrary: fc.constant(route.method) }, { weight: 1, arbitrary: fc.constantFrom(...oddMethods) }),
        segments: fc.tuple(...route.parts.map((part) => segmentArb(part, ids))),
        bend: fc.oneof(
          { weight: 10, arbitrary: fc.constant("none") },
          { weight: 1, arbitrary: fc.constantFrom("extra", "drop", "trailing", "double", "query", "fragment", "dots") },
        ),
        extra: ids,
      })
      .map(({ method, segments, bend, extra }) => {
        let parts = [...segments];
        if (bend === "extra") parts.push(extra);
        if (bend === "drop") parts = parts.slice(0, -1);
        let target = `/${parts.join("/")}`;
        if (bend === "trailing") target += "/";
        if (bend === "double") target = target.replace("/", "//");
        if (bend === "query") target += `?amount=1&${extra}`;
        if (bend === "fragment") target += "#x";
        if (bend === "dots") target = `/stock/../${parts.join("/")}`;
        return { method, target };
      }),
  );
}

function requestArb(ids: fc.Arbitrary<string>): fc.Arbitrary<FuzzRequest> {
  const unknownRoute = fc.record({
    method: fc.constantFrom(...oddMethods),
    target: fc
      .array(fc.oneof(ids, numberArb, fc.constantFrom("stock", "payment", "orders", "cluster", "find", "v1")), { maxLength: 7 })
      .map((parts) => `/${parts.join("/")}`),
  });
  const oddTarget = fc.record({
    method: fc.constantFrom(...oddMethods),
    target: fc.constantFrom(
      "*",
      "",
      "/",
      "//",
      "stock/find/0",
      "http://127.0.0.1/stock/find/0",
      "/%",
      "/..",
      "/../../etc/passwd",
      `/stock/find/${"z".repeat(20_000)}`,
      `/${"a/".repeat(2_000)}`,
      "/stock/find/0 HTTP/1.1\r\nX: y",
      "/\u0000",
    ),
  });
  const contentTypes = [
    "application/json",
    "application/json; charset=utf-8",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "application/octet-stream",
    "",
    "garbage",
    "application/json; charset=utf-16",
    "*/*",
    "text/html; charset=\x80\xff",
    "x".repeat(3_000),
  ];
  const headerArb = fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...contentTypes).map((value) => ["Content-Type", value] as const) },
    { weight: 2, arbitrary: fc.constantFrom("application/json", "text/html", "*/*", "application/xml", "", "\x80").map((value) => ["Accept", value] as const) },
    { weight: 1, arbitrary: fc.constant(["Expect", "100-continue"] as const) },
    { weight: 1, arbitrary: fc.constant(["Content-Encoding", "gzip"] as const) },
    { weight: 1, arbitrary: fc.constantFrom("1.2.3.4", "junk", "").map((value) => ["X-Forwarded-For", value] as const) },
    { weight: 2, arbitrary: fc.string({ maxLength: 40, unit: "binary-ascii" }).map((value) => ["X-Random", value.replace(/[\r\n]/g, "")] as const) },
    // Ones the HTTP parser itself refuses.
    { weight: 1, arbitrary: fc.constantFrom("abc", "-1", "1.5", "99999999999999999999").map((value) => ["Content-Length", value] as const) },
    { weight: 1, arbitrary: fc.constantFrom(["X-Long", "v".repeat(20_000)] as const, ["Bad Header", "x"] as const, ["X-Odd", "\x01\x7f"] as const) },
  );
  const bodyArb = fc.oneof(
    { weight: 12, arbitrary: fc.constant(Buffer.alloc(0)) },
    { weight: 2, arbitrary: fc.json().map((json) => Buffer.from(json)) },
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }).map((bytes) => Buffer.from(bytes)) },
    { weight: 1, arbitrary: fc.constantFrom(4_096, 4_097, 10_000, 64 * 1024).map((size) => Buffer.alloc(size, "{")) },
    { weight: 1, arbitrary: fc.constant(Buffer.from([0xc0, 0xaf, 0xff, 0xfe, 0x00])) },
  );
  return fc
    .record({
      route: fc.oneof({ weight: 10, arbitrary: knownRouteArb(ids) }, { weight: 2, arbitrary: unknownRoute }, { weight: 1, arbitrary: oddTarget }),
      version: fc.oneof(
        { weight: 10, arbitrary: fc.constant("HTTP/1.1") },
        { weight: 1, arbitrary: fc.constantFrom("HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "HTTP/9") },
      ),
      host: fc.oneof({ weight: 10, arbitrary: fc.constant("127.0.0.1") }, { weight: 1, arbitrary: fc.constantFrom(null, "", "a b", "x".repeat(300)) }),
      headers: fc.array(headerArb, { maxLength: 2 }),
      body: bodyArb,
      chunked: fc.oneof({ weight: 10, arbitrary: fc.constant("no" as const) }, { weight: 1, arbitrary: fc.constantFrom("yes" as const, "broken" as const) }),
    })
    .map(({ route, version, host, headers, body, chunked }) => ({
      method: route.method,
      target: route.target,
      version,
      headers: [...(host === null ? [] : [["Host", host] as const]), ...headers],
      body,
      chunked,
    }));
}

function encode(request: FuzzRequest): Buffer {
  const headers: (readonly [string, string])[] = [...request.headers];
  let body = request.body;
  if (request.chunked === "no") {
    if (!headers.some(([name]) => name === "Content-Length") && body.length > 0) headers.push(["Content-Length", String(body.length)]);
  } else {
    headers.push(["Transfer-Encoding", "chunked"]);
    const chunk = request.chunked === "yes" ? body.length.toString(16) : "zz";
    body = Buffer.concat([Buffer.from(`${chunk}\r\n`), body, Buffer.from(body.length > 0 ? "\r\n0\r\n\r\n" : "\r\n")]);
  }
  // Every answer ends the connection, so the client reads until close.
  headers.push(["Connection", "close"]);
  return encodeRequest(`${request.method} ${request.target} ${request.version}`, headers, body);
}

/** The non-empty "error" string of a JSON body, or "". */
function errorOf(body: string): string {
  try {
    const error = (JSON.parse(body) as { error?: unknown }).error;
    return typeof error === "string" ? error : "";
  } catch {
    return "";
  }
}

function describeRequest(request: FuzzRequest): string {
  const target = request.target.length > 200 ? `${request.target.slice(0, 200)}...(${request.target.length} chars)` : request.target;
  return `${JSON.stringify(request.method)} ${JSON.stringify(target)} ${request.version} ${JSON.stringify(request.headers.map(([name, value]) => [name, value.slice(0, 60)]))} body ${request.body.length} bytes, chunked ${request.chunked}`;
}

describe("fuzz of the HTTP API (G2: a refusal changes nothing; never a 5xx)", () => {
  it("answers random requests with no 5xx, stays up, and no 4xx changes any state", async () => {
    const seeded = [...watched.items, ...watched.users, ...watched.orders];
    const statuses = new Map<string, number>();
    let before: string[] | undefined;
    await fc.assert(
      fc.asyncProperty(requestArb(idArb(seeded)), async (request) => {
        const context = describeRequest(request);
        before ??= await snapshot();
        const expected = before;
        before = undefined;
        let answer: RawAnswer;
        try {
          answer = await rawRequest(replica.port, encode(request));
        } catch (error) {
          throw new Error(`${context}: ${(error as Error).message}`);
        }
        const status = answer.status;
        statuses.set(String(status), (statuses.get(String(status)) ?? 0) + 1);
        expect(status, `${context}: no answer (${answer.body.slice(0, 200)})`).not.toBeNull();
        expect(status!, `${context}: ${answer.body.slice(0, 300)}`).toBeLessThan(500);
        expect(replica.running, `${context}: the replica exited\n${replica.printed()}`).toBe(true);
        const after = await snapshot();
        if (status! >= 400) {
          expect(after, `${context}: a ${status} changed state`).toEqual(expected);
          // Node's own parser answers a request it cannot parse (no Host, say) with an empty 400;
          // everything that reaches the app is refused with a message (API.md).
          if (request.method !== "HEAD" && request.headers.some(([name]) => name === "Host")) {
            expect(errorOf(answer.body), `${context}: a ${status} without {"error": "..."}: ${answer.body.slice(0, 200)}`).not.toBe("");
          }
        }
        before = after;
      }),
      { numRuns: Number(process.env.FUZZ_RUNS ?? 2_000), seed: Number(process.env.FUZZ_SEED ?? Date.now() % 2 ** 31), endOnFailure: true },
    );
    console.log(`fuzz statuses: ${JSON.stringify(Object.fromEntries([...statuses].sort()))}`);
    expect(replica.printed()).not.toMatch(/request failed|internal error/);
  }, 120_000);
});
