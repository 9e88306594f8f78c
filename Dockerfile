# A container image with nothing but the static sipsteer binary: no base image to pull.
# Build the binary first (the gnu target with a static C runtime), then the image:
#   RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target x86_64-unknown-linux-gnu
#   docker build -t sipsteer:0.1.0 .        (or: buildah bud -t sipsteer:0.1.0 .)
# Run it with a config directory mounted at /etc/sipsteer and a writable /var/lib/sipsteer:
#   docker run --rm -v /etc/sipsteer:/etc/sipsteer:ro -v sipsteer-state:/var/lib/sipsteer \
#     -p 53:53/udp -p 53:53 sipsteer:0.1.0
FROM scratch
COPY target/x86_64-unknown-linux-gnu/release/sipsteer /sipsteer
# The same unprivileged uid as examples/kubernetes; state and config come from volumes.
USER 65532:65532
ENV RUST_LOG=info
EXPOSE 53/udp 53/tcp 8053/tcp
ENTRYPOINT ["/sipsteer"]
CMD ["serve", "--config", "/etc/sipsteer/sipsteer.yaml"]
