# keyplane runs its TypeScript through tsx: no build step, the image carries the sources.
FROM node:20-bookworm-slim
WORKDIR /app
ENV NODE_ENV=production
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY bin ./bin
COPY src ./src
COPY migrations ./migrations
COPY tsconfig.json ./
USER node
EXPOSE 8080 8081
# The live heap is ~40 MB; without a limit V8 lets it grow to ~270 MB RSS under load before
# collecting (README "Performance"). 192 MB keeps the peak near 160 MB at the same throughput.
CMD ["node", "--max-old-space-size=192", "bin/keyplane.js", "serve"]
