# One image for every replica; docker-compose.yml and deploy/ run several of it.
FROM node:20-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json vitest.config.ts ./
COPY crdt crdt
COPY cluster cluster
COPY node node
COPY api api
COPY scripts scripts
COPY test test
RUN npx tsc -p . && npm prune --omit=dev

FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY --from=build /app/node_modules node_modules
COPY --from=build /app/dist dist
COPY package.json ./
EXPOSE 8000 9000
VOLUME /data
# Settings come from the environment: REPLICA_ID, PORT, PEER_PORT, PEERS, CLUSTER_SECRET, ADMIN_TOKEN, DATA_DIR.
CMD ["node", "dist/node/main.js"]
