# zipgate on Node 24 LTS (the version the suite runs on: scripts/test.sh).
# The tag is pinned exactly. Pin the digest too where you build:
#   docker pull node:24.21.0-bookworm-slim && docker inspect --format '{{index .RepoDigests 0}}' node:24.21.0-bookworm-slim
# and write FROM node:24.21.0-bookworm-slim@sha256:<digest> (it could not be looked up
# where this file was written: no registry access).
ARG NODE_IMAGE=node:24.21.0-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

FROM ${NODE_IMAGE}
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8080 \
    ZIPGATE_STORAGE=/data
# Blocks of 128 KiB and up straight from (and back to) the OS: glibc otherwise raises this
# threshold as they are freed, and its heaps keep hundreds of MiB after a burst of downloads.
ENV MALLOC_MMAP_THRESHOLD_=131072
# Download URLs are built on ZIPGATE_PUBLIC_URL; inside a container the default
# (http://127.0.0.1:8080) is rarely what clients reach. Set it at run time:
#   docker run -e ZIPGATE_PUBLIC_URL=https://downloads.example.com …
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY bin ./bin
COPY package.json LICENSE ./
COPY docker/entrypoint.sh /usr/local/bin/zipgate-entrypoint
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
EXPOSE 8080
# Ready = the process answers and its store does (a wrong S3 secret shows as unhealthy);
# Docker itself restarts nothing on it, orchestrators decide.
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
# Starts as root only to take the uid of the mounted /data's owner, then drops to it
# (node, uid 1000, for a fresh volume); with --user it runs as given.
ENTRYPOINT ["zipgate-entrypoint"]
CMD ["bin/zipgate"]
