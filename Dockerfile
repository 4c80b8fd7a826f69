# Build stage: compile tend in release mode.
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
# Cargo reads every target named in Cargo.toml, so these come along too.
COPY testbed/ecs_fake testbed/ecs_fake
COPY testbed/instagram_fake testbed/instagram_fake
COPY benches benches
RUN cargo build --release --locked --bin tend

# Final stage: glibc, CA certificates and the binary, running as a
# numeric non-root user.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/tend /usr/local/bin/tend
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/tend"]
CMD ["run"]
