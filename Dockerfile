# sigcast: a multi-stage build into a slim, non-root image meant to run with a read-only
# root filesystem.
#
#   docker build -t sigcast .
#   sigcast init site                      # config, dev certificate, JWT secret, signals/
#   docker run --rm --read-only -p 8443:8443 -p 127.0.0.1:9090:9090 \
#     -v $PWD/site:/etc/sigcast:ro -v sigcast-data:/var/lib/sigcast sigcast
#
# /etc/sigcast holds what `sigcast init` writes (mounted read-only); the signal journal and
# token registry live in the /var/lib/sigcast volume, the only place sigcast writes.
# docker-compose.yml runs the same with every hardening option set.

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY signals signals
# Cargo.toml declares the benchmark targets, so their files must be present to build at all.
COPY benches benches
RUN cargo build --release --locked && strip target/release/sigcast

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --user-group --no-create-home --shell /usr/sbin/nologin sigcast \
 && mkdir -p /etc/sigcast /var/lib/sigcast \
 && chown 10001:10001 /var/lib/sigcast \
 && chmod 0700 /var/lib/sigcast
COPY --from=build /src/target/release/sigcast /usr/local/bin/sigcast
COPY signals /etc/sigcast/signals
USER 10001:10001
WORKDIR /etc/sigcast
# Settings a container wants whatever the file says: listen on every interface of the
# container (publish the admin port on the host's loopback only), keep data in the volume,
# log JSON for the log collector.
ENV SIGCAST_CONFIG=/etc/sigcast/sigcast.toml \
    SIGCAST_SERVER_LISTEN=0.0.0.0:8443 \
    SIGCAST_ADMIN_ENABLED=true \
    SIGCAST_ADMIN_LISTEN=0.0.0.0:9090 \
    SIGCAST_DATA_DIR=/var/lib/sigcast \
    SIGCAST_LOG_FORMAT=json
VOLUME ["/var/lib/sigcast"]
# 8443: TLS WebSocket clients. 9090: /metrics, /healthz, /readyz (plain HTTP, keep private).
EXPOSE 8443 9090
# No curl in a slim image: sigcast asks its own admin listener.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/sigcast", "healthcheck", "--admin", "127.0.0.1:9090"]
# SIGTERM: sessions are closed 1001 and the journal flushed. SIGHUP (docker kill -s HUP):
# certificate, JWT keys and strategies reload.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sigcast"]
CMD ["serve"]
