# syntax=docker/dockerfile:1
#
# One image for all four services of the checkout pipeline. The binary to run
# is chosen by the container's command (see docker-compose.yml):
#
#   docker build -t checkout-pipeline .
#   docker run --rm checkout-pipeline order-service
#
# Stages: `chef` (toolchain + cargo-chef) -> `planner` (dependency recipe)
# -> `builder` (dependencies, cached in their own layer; then our crates)
# -> `runtime` (Debian slim, the four binaries and the `dlq` tool, a
# non-root user).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
WORKDIR /app
# cargo-chef turns the workspace's manifests and Cargo.lock into a "recipe" so
# the dependencies build in a layer that only changes when they change, not on
# every edit of our own code. Pinned so image builds are reproducible.
RUN cargo install cargo-chef --locked --version 0.1.78

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
# Migrations are embedded by `sqlx::migrate!` at compile time, so the runtime
# image needs no files besides the binaries. Compile-time-checked queries, if
# any crate uses them, must read the committed `.sqlx/` data: there is no
# database during an image build.
ENV SQLX_OFFLINE=true \
    CARGO_INCREMENTAL=0
COPY --from=planner /app/recipe.json recipe.json
RUN cargo chef cook --release --locked --recipe-path recipe.json \
        --bin gateway --bin order-service --bin payment-service --bin email-service --bin dlq
COPY . .
RUN cargo build --release --locked \
        --bin gateway --bin order-service --bin payment-service --bin email-service --bin dlq

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: SMTP over TLS to a real provider verifies against the system
# roots (lettre with rustls-native-certs).
# curl: the container health checks call each service's /ready (compose); it is
# also what an operator reaches for inside a container (`/metrics`, `/ready`).
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/*
# A fixed numeric uid/gid, so orchestrators can check `runAsNonRoot`.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin app
COPY --from=builder \
    /app/target/release/gateway \
    /app/target/release/order-service \
    /app/target/release/payment-service \
    /app/target/release/email-service \
    /app/target/release/dlq \
    /usr/local/bin/
USER 10001:10001
# gateway 9000, order-service 8001, payment-service 8002, email-service 8003.
EXPOSE 9000 8001 8002 8003
# The default; compose picks the service with `command:`. Every service drains
# in-flight work on SIGTERM (Docker's default stop signal).
CMD ["gateway"]
