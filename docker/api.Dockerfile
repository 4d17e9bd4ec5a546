# syntax=docker/dockerfile:1
# Trainyard API (fastify). It also serves predictions, so it tries the native TensorFlow backend
# too. Build from the repository root:  docker build -f docker/api.Dockerfile -t trainyard-api .

ARG NODE_IMAGE=node:20-bookworm-slim

FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Compilers only live in this stage: tfjs-node compiles its binding where Google publishes no
# prebuilt one (e.g. linux/arm64). The runtime stage never sees them.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ \
 && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
# Install scripts are off for the whole tree and the one native package this image wants is built
# by name below: the image keeps only the TensorFlow it uses (not the GPU one's ~400 MB), and it
# works whatever default an npm version has for gating install scripts. That also skips the
# project's own postinstall (prisma generate), which needs sources not copied yet; see below.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# tfjs-node is optional: if its libtensorflow download or build fails, or the library won't load
# (e.g. a CPU without AVX), drop it so the `auto` backend goes straight to WebAssembly.
RUN rm -rf node_modules/@tensorflow/tfjs-node-gpu \
 && if npm rebuild @tensorflow/tfjs-node --foreground-scripts \
      && node -e "require('@tensorflow/tfjs-node')"; then \
      echo "tfjs-node installed: native TensorFlow backend available"; \
    else \
      echo "tfjs-node unavailable on this platform; the WebAssembly backend will be used" >&2; \
      rm -rf node_modules/@tensorflow/tfjs-node; \
    fi
COPY . .
# The Prisma client is generated, not committed (.dockerignore keeps a host copy out).
RUN npm run db:generate

FROM ${NODE_IMAGE}
# Learning curves are drawn as SVG and rasterized by librsvg (sharp) for curves.png: without a
# font, every label of the PNG would be blank.
RUN apt-get update \
 && apt-get install -y --no-install-recommends fonts-dejavu-core \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# Left owned by root: the service user can read its code but not rewrite it.
COPY --from=build /app /app
USER node
EXPOSE 8080
# /readyz rather than /healthz: "healthy" should mean it can reach Postgres and Redis. Slim images
# have no curl, so Node's own fetch does the probe.
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 8080) + '/readyz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
CMD ["node", "--import", "tsx", "services/server.ts"]
