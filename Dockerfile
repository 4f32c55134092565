# keyplane's image: a build stage compiles the TypeScript (npm run build) and builds the embedded
# database's template; the runtime stage holds the production dependencies, dist/ and the migrations,
# and no sources, tsx or compiler. test/system/image.test.ts performs these steps without a Docker
# engine: it reads this file, runs each RUN in a temporary directory (as root, as Docker does), then
# starts CMD as an unprivileged user and waits for HEALTHCHECK. Keep every RUN a plain shell command.
ARG NODE_IMAGE=node:24-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Without install scripts (the package's own postinstall would compile before the sources are here),
# then argon2's, the one production dependency with one: it keeps its prebuilt N-API binary when that
# loads (it does on Node 22 and 24, glibc), else compiles it (needs python3, make, g++).
RUN npm ci --ignore-scripts --no-audit --no-fund && npm rebuild argon2
COPY tsconfig.json tsconfig.build.json ./
COPY scripts ./scripts
COPY src ./src
COPY migrations ./migrations
# The template lands in node_modules/.cache/keyplane, which npm prune leaves in place.
RUN npm run build && npm run pglite:template && npm prune --omit=dev --no-audit --no-fund

FROM ${NODE_IMAGE}
ARG NODE_IMAGE
# `docker build --build-arg REVISION=$(git rev-parse HEAD) --build-arg CREATED=$(date -u +%FT%TZ)`
ARG VERSION=0.1.0
ARG REVISION=""
ARG CREATED=""
LABEL org.opencontainers.image.title="keyplane" \
      org.opencontainers.image.description="A key-management plane for fleets of AI agents, speaking the Saperly v1 key API" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.base.name="${NODE_IMAGE}"
# HOST is the public listener's address (all interfaces in a container); the admin listener stays on
# the container's loopback unless ADMIN_HOST says otherwise (docs/operations.md).
ENV NODE_ENV=production DATA_DIR=/data HOST=0.0.0.0 PORT=8080 ADMIN_PORT=8081
WORKDIR /app
COPY --from=build /app/package.json ./package.json
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/migrations ./migrations
COPY bin ./bin
# Embedded mode (no DATABASE_URL) keeps its data in /data, which the unprivileged user owns; mount
# a volume there. With DATABASE_URL set the directory stays empty.
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8080 8081
# Slim images carry no curl: Node's own fetch probes the public listener.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# node itself is PID 1 (exec form, no npm, no shell): SIGTERM reaches the server, which stops
# accepting, finishes the requests in flight and closes the database (close-with-grace,
# SHUTDOWN_GRACE_MS). The live heap is ~40 MB; without a limit V8 lets it grow to ~270 MB RSS under
# load before collecting (README "Performance"); 192 MB keeps the peak near 160 MB.
CMD ["node", "--max-old-space-size=192", "bin/keyplane.js", "serve"]
