# syntax=docker/dockerfile:1
# Trainyard GPU training worker: tfjs-node-gpu 4.22 on libtensorflow 2.9, which needs CUDA 11.2 and
# cuDNN 8.1 in the image and an NVIDIA driver + NVIDIA Container Toolkit on the host (linux/amd64).
# Build from the repository root:  docker build -f docker/worker-gpu.Dockerfile -t trainyard-worker-gpu .

ARG NODE_IMAGE=node:20-bookworm-slim
# NVIDIA deletes old tags from time to time; if this one is gone, any 11.2.x + cudnn8 runtime tag
# (here or on nvcr.io) works: --build-arg CUDA_IMAGE=...
ARG CUDA_IMAGE=nvidia/cuda:11.2.2-cudnn8-runtime-ubuntu20.04

FROM ${NODE_IMAGE} AS node

# Node is copied from the official image rather than installed from a third-party apt repository:
# the same Node as the other images, no apt against an end-of-life Ubuntu, and Node's release
# binaries need only glibc 2.28 (Ubuntu 20.04 has 2.31).
FROM ${CUDA_IMAGE} AS cuda-node
COPY --from=node /usr/local/bin/node /usr/local/bin/node
COPY --from=node /usr/local/lib/node_modules/npm /usr/local/lib/node_modules/npm
RUN ln -s ../lib/node_modules/npm/bin/npm-cli.js /usr/local/bin/npm \
 && ln -s ../lib/node_modules/npm/bin/npx-cli.js /usr/local/bin/npx \
 && node --version && npm --version

FROM cuda-node AS build
WORKDIR /app
COPY package.json package-lock.json ./
# Install scripts are off for the whole tree and tfjs-node-gpu's is run by name below: the image
# keeps only the TensorFlow it uses, and it works whatever default an npm version has for gating
# install scripts. That also skips the project's own postinstall (prisma generate), which needs
# sources not copied yet; see below.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund
# Unlike the CPU images there is no fallback: a GPU worker without its GPU library is a build error.
# The check is on files, not a require(): the driver (libcuda) only exists when the container runs.
RUN rm -rf node_modules/@tensorflow/tfjs-node \
 && npm rebuild @tensorflow/tfjs-node-gpu --foreground-scripts \
 && ls node_modules/@tensorflow/tfjs-node-gpu/deps/lib/libtensorflow.so.* \
 && ls node_modules/@tensorflow/tfjs-node-gpu/lib/napi-v*/tfjs_binding.node
COPY . .
# The Prisma client is generated, not committed (.dockerignore keeps a host copy out).
RUN npm run db:generate

FROM cuda-node
RUN useradd --uid 1000 --create-home --shell /usr/sbin/nologin trainyard
WORKDIR /app
# Left owned by root: the service user can read its code but not rewrite it.
COPY --from=build /app /app
USER trainyard
# Fail loudly rather than train on the CPU when the GPU library does not load.
ENV TRAINYARD_BACKEND=tensorflow-gpu
# Healthy = the worker's heartbeat in Redis is fresh, i.e. its event loop is alive and connected.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
  CMD ["node", "--import", "tsx", "workers/healthcheck.ts"]
CMD ["node", "--import", "tsx", "workers/worker.ts"]
