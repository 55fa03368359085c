# The production image of a replica; docker-compose.yml and deploy/kubernetes.yaml run
# several of it. Only what a replica runs is in it: the compiled api/, cluster/, crdt/
# and node/, and the production dependencies. No tests, scripts or dev dependencies:
# tsconfig.json also compiles test/ and scripts/, so the build stage gets only the
# four source folders, and the last stage copies only their output.
# Settings come from the environment (README, "Configuration"): REPLICA_ID, PORT,
# PEER_PORT, PEERS, CLUSTER_SECRET_FILE, ADMIN_TOKEN_FILE, DATA_DIR, ...

# 1. Compile with the dev dependencies (TypeScript).
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY crdt crdt
COPY cluster cluster
COPY node node
COPY api api
RUN npx tsc -p tsconfig.json

# 2. The production dependencies alone, exactly as package-lock.json pins them.
FROM node:20-bookworm-slim AS dependencies
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# 3. What runs.
FROM node:20-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
# package.json says "type": "module", which the compiled files need.
COPY package.json ./
COPY --from=dependencies /app/node_modules node_modules
COPY --from=build /app/dist/api dist/api
COPY --from=build /app/dist/cluster dist/cluster
COPY --from=build /app/dist/crdt dist/crdt
COPY --from=build /app/dist/node dist/node
# The data folder and the secrets folder belong to the image's user (node, uid 1000):
# a named volume mounted there for the first time takes this owner.
RUN mkdir -p /data /secrets && chown 1000:1000 /data /secrets
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 1000:1000
EXPOSE 8000 9000
VOLUME /data
CMD ["node", "dist/node/main.js"]
