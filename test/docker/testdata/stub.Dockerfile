# The end-to-end test's stand-ins: marathonstub (test/docker/marathonstub)
# and the demo backend (deploy/demo/backend), static binaries the test
# builds on the host into this image's context.
FROM debian:bookworm-slim
COPY marathonstub backend /usr/local/bin/
USER nobody
