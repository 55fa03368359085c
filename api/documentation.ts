// The OpenAPI document, made from the route schemas by @fastify/swagger (GET
// /documentation/json, /documentation/yaml), and Swagger UI at /documentation,
// served from the package itself (nothing fetched from elsewhere). Registered
// before every route, so it sees them all.
import fastifySwagger from "@fastify/swagger";
import fastifySwaggerUi from "@fastify/swagger-ui";
import type { FastifyInstance, FastifySchema } from "fastify";

export const documentationPrefix = "/documentation";

/** The tag of a route: its first path segment (stock, payment, orders, cluster), or "operations". */
function tagOf(url: string): string {
  const first = url.split("/")[1] ?? "";
  return ["stock", "payment", "orders", "cluster"].includes(first) ? first : "operations";
}

export function registerDocumentation(app: FastifyInstance): void {
  app.register(fastifySwagger, {
    openapi: {
      openapi: "3.0.3",
      info: {
        title: "escrow-shop",
        description:
          "The order / payment / stock shop served by every peer replica (API.md), plus the cluster view, admin routes " +
          '(Authorization: Bearer <admin token>) and the operations routes. Refusals are 4xx with {"error": "..."}.',
        version: "0.1.0",
      },
      tags: [
        { name: "stock", description: "items and their stock" },
        { name: "payment", description: "users and their credit" },
        { name: "orders", description: "orders and checkout" },
        { name: "cluster", description: "this replica's view of the cluster; writes need the admin token" },
        { name: "operations", description: "health, readiness, metrics, dashboard: read-only, open to anyone" },
      ],
    },
    transform: ({ schema, url }) => {
      const given: FastifySchema = schema ?? {};
      return { schema: { ...given, tags: given.tags ?? [tagOf(url)] }, url };
    },
  });
  app.register(fastifySwaggerUi, { routePrefix: documentationPrefix });
}
