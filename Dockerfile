# The Eye's container image: `eye serve` on 0.0.0.0:8000 with its data in /data.
#
#   docker build -t the-eye .
#   docker run -p 127.0.0.1:8000:8000 -v eye-data:/data the-eye
#
# Written for the classic builder too (no BuildKit-only syntax). Three stages:
# 1. skeleton: the workspace's manifests with empty crate roots. Its files change only
#    when a manifest does, so the dependency layer built from it stays cached while
#    only the project's sources change.
# 2. build: dependencies from the skeleton, then the real sources, then a stripped binary.
# 3. runtime: Debian slim (the build's glibc) with the binary, as a non-root user.

FROM debian:bookworm-slim AS skeleton
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY crates /tmp/crates
# Each crate keeps its manifest and gets an empty lib.rs or main.rs where it has one.
RUN set -eu; \
    for dir in /tmp/crates/*/; do \
      crate=$(basename "$dir"); \
      mkdir -p "crates/$crate/src"; \
      cp "$dir/Cargo.toml" "crates/$crate/"; \
      if [ -f "$dir/src/lib.rs" ]; then : > "crates/$crate/src/lib.rs"; fi; \
      if [ -f "$dir/src/main.rs" ]; then echo 'fn main() {}' > "crates/$crate/src/main.rs"; fi; \
    done

FROM rust:1-slim-bookworm AS build
# Set for both builds below: a profile setting is part of every crate's fingerprint,
# and a change between them would rebuild every dependency.
ENV CARGO_PROFILE_RELEASE_STRIP=symbols
WORKDIR /src
COPY --from=skeleton /src ./
RUN cargo build --release --locked -p eye
COPY Cargo.toml Cargo.lock ./
COPY crates crates
# The browser client, served at /sdk/eye.js, is compiled into the server.
COPY clients/browser/eye.js clients/browser/eye.js
# The sources may be older than the skeleton's build: touch them so cargo rebuilds them.
RUN find crates -name '*.rs' -exec touch {} + \
 && cargo build --release --locked -p eye \
 && cp target/release/eye /usr/local/bin/eye

FROM debian:bookworm-slim
RUN groupadd --system --gid 10001 eye \
 && useradd --system --uid 10001 --gid eye --home-dir /data --shell /usr/sbin/nologin eye \
 && mkdir /data && chown eye:eye /data
COPY --from=build /usr/local/bin/eye /usr/local/bin/eye
# Inside a container the service listens on every interface; the data directory is the
# volume. Logs go to stdout (EYE_LOG_FORMAT=json for one JSON object per line).
ENV EYE_LISTEN=0.0.0.0:8000 \
    EYE_DATA_DIR=/data
VOLUME ["/data"]
WORKDIR /data
EXPOSE 8000
USER 10001:10001
# `eye health` is a few lines of HTTP in the binary: the runtime image has no curl.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["eye", "health"]
# eye is PID 1: it handles SIGTERM itself (stop taking requests, finish those in flight,
# drain the queue into the store) within EYE_SHUTDOWN_TIMEOUT_MS (10 s by default).
ENTRYPOINT ["eye"]
CMD ["serve"]
