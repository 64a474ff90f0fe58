# Runnel broker image: a release build in a Rust image, run from a slim Debian image as a
# non-root user with the data directory on a volume.
#
#   docker build -t runnel .
#   docker run -p 9092:9092 -p 9644:9644 -v runnel-data:/var/lib/runnel runnel
#
# Clients outside the container need an address they can reach: set RUNNEL_ADVERTISE (e.g.
# localhost:9092 with the port published as above). compose.yaml adds Prometheus and Grafana.

# --- build ----------------------------------------------------------------------------------
FROM rust:1-slim-bookworm AS build
WORKDIR /src
# The whole workspace: cargo resolves every member's manifest, and the patched
# kafka-protocol crate lives in third_party/.
COPY Cargo.toml Cargo.lock clippy.toml ./
COPY third_party third_party
COPY protocol protocol
COPY broker broker
COPY client client
COPY bench bench
COPY tests tests
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p runnel-broker \
 && install -D -m 0755 target/release/runnel-broker /out/runnel-broker

# --- run ------------------------------------------------------------------------------------
FROM debian:bookworm-slim AS runtime
# curl only for the HEALTHCHECK below.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 runnel \
 && useradd --system --uid 10001 --gid runnel --home-dir /var/lib/runnel --shell /usr/sbin/nologin runnel \
 && install -d -o runnel -g runnel -m 0750 /var/lib/runnel
COPY --from=build /out/runnel-broker /usr/local/bin/runnel-broker

# Listen on every interface inside the container; data on the volume.
ENV RUNNEL_DATA_DIR=/var/lib/runnel \
    RUNNEL_LISTEN=0.0.0.0:9092 \
    RUNNEL_HTTP_LISTEN=0.0.0.0:9644 \
    RUST_LOG=info
VOLUME ["/var/lib/runnel"]
EXPOSE 9092 9644
USER runnel:runnel
WORKDIR /var/lib/runnel

HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD curl -fsS http://127.0.0.1:9644/healthz || exit 1

# SIGTERM is a graceful stop: in-flight requests finish, logs are flushed, clean-shutdown marker.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/runnel-broker"]
