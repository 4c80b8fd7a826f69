# syntax=docker/dockerfile:1.7
# tend: multi-stage build of the `tend` binary only, run as a numeric
# non-root user on a distroless base that holds glibc, libgcc and CA
# certificates (tend verifies TLS with the system roots).
#
# NOTE: distroless publishes no versioned tags, so the final stage is pinned
# by flavour only. Pin both stages by digest (`image:tag@sha256:...`) when
# releasing; the digests could not be resolved where this file was written.

# Build stage: the toolchain named by rust-version in Cargo.toml.
FROM rust:1.95.0-slim-bookworm AS build
WORKDIR /src
# Cargo reads every target declared in Cargo.toml, so the two test fakes
# and the benchmarks must be present even though only tend is built. The
# whole testbed/ is copied (under 1 MB) because the fakes include shared
# modules from other folders of it.
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY testbed testbed
COPY benches benches
# The caches keep the registry and compiled dependencies between builds;
# the binary is copied out because the target cache is not in the image.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin tend \
    && cp target/release/tend /tend

# Final stage.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /tend /usr/local/bin/tend
# 65532 is distroless's nonroot user; numeric so Kubernetes can check
# runAsNonRoot without reading /etc/passwd.
USER 65532:65532
EXPOSE 9464
ENTRYPOINT ["/usr/local/bin/tend"]
CMD ["run"]
