# sigcast: multi-stage build into a small non-root image.
#   docker build -t sigcast .
#   docker run --rm -p 8443:8443 -v $PWD/site:/etc/sigcast:ro sigcast
# where ./site holds what `sigcast init site` writes (set server.listen = "0.0.0.0:8443").

FROM rust:1-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY signals signals
# Cargo.toml declares the benchmark target, so its file must be present to build at all.
COPY benches benches
RUN cargo build --release --locked && strip target/release/sigcast

FROM debian:bookworm-slim
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin sigcast \
 && mkdir -p /etc/sigcast && chown sigcast /etc/sigcast
COPY --from=build /src/target/release/sigcast /usr/local/bin/sigcast
COPY signals /etc/sigcast/signals
USER 10001
WORKDIR /etc/sigcast
ENV SIGCAST_CONFIG=/etc/sigcast/sigcast.toml
EXPOSE 8443
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/sigcast"]
CMD ["serve"]
