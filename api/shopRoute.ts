// The shape every shop route shares (stock, payment, orders): path parameters
// declared by kind and checked by the schema alone, amounts handed to the route as
// numbers, and its answer sent as JSON, as text, or as the refusal's 4xx.
import type { FastifyInstance } from "fastify";
import { type Refusal, isRefusal } from "../crdt/shopState.js";
import type { RequestGuard } from "../node/idempotency.js";
import { OutcomeUnknownError } from "../node/replica.js";
import { sendRefusal } from "./answers.js";
import { type ParamKind, paramsSchema } from "./params.js";

type ParamKinds = Readonly<Record<string, ParamKind>>;

/** Ids as the strings they are, amounts and batch sizes as numbers. */
type ParamValues<Kinds extends ParamKinds> = { readonly [Name in keyof Kinds]: Kinds[Name] extends "id" ? string : number };

/** An object is sent as JSON (through `response` if given), a string as text/plain. */
type Answer = object | string;

interface ShopRoute<Kinds extends ParamKinds> {
  readonly method: "GET" | "POST";
  /** The path, its parameters in the order of `params`. */
  readonly url: string;
  readonly params: Kinds;
  /** Schema of the JSON answer with 200. */
  readonly response?: object;
  /** The answer, or the refusal. `guard`: the request's Idempotency-Key, for Replica.mutate and newId. */
  readonly answer: (params: ParamValues<Kinds>, guard: RequestGuard | undefined) => Promise<Answer | Refusal>;
}

export function shopRoute<Kinds extends ParamKinds>(app: FastifyInstance, route: ShopRoute<Kinds>): void {
  const names = Object.keys(route.params);
  const namesInUrl = [...route.url.matchAll(/:(\w+)/g)].map((match) => match[1]);
  if (names.join("/") !== namesInUrl.join("/")) throw new Error(`${route.url}: params must be ${namesInUrl.join(", ")}, in that order`);
  app.route<{ Params: Record<string, string> }>({
    method: route.method,
    url: route.url,
    schema: {
      ...(names.length === 0 ? {} : { params: paramsSchema(route.params) }),
      ...(route.response === undefined ? {} : { response: { 200: route.response } }),
    },
    handler: async (request, reply) => {
      let answer: Answer | Refusal;
      try {
        answer = await route.answer(paramValues(route.params, request.params), request.idempotencyGuard);
      } catch (error) {
        if (!(error instanceof OutcomeUnknownError)) throw error;
        // Neither a 2xx nor a 4xx would be the truth: the client sees what a crash shows, and a retry tells.
        request.log.warn({ url: request.url }, error.message);
        reply.hijack();
        request.raw.socket.destroy();
        return reply;
      }
      if (typeof answer === "string") return reply.type("text/plain; charset=utf-8").send(answer);
      return isRefusal(answer) ? sendRefusal(reply, answer) : answer;
    },
  });
}

/** The parameters as the route reads them; the schema has already checked every one. */
function paramValues<Kinds extends ParamKinds>(kinds: Kinds, texts: Readonly<Record<string, string>>): ParamValues<Kinds> {
  const values: Record<string, string | number> = {};
  for (const [name, kind] of Object.entries(kinds)) {
    const text = texts[name]!;
    values[name] = kind === "id" ? text : Number(text);
  }
  return values as ParamValues<Kinds>;
}
