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
CMD ["node", "bin/keyplane.js", "serve"]
