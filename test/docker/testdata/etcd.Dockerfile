# A real etcd for the end-to-end test, from Debian's etcd-server package,
# on the same base as the images.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server \
 && rm -rf /var/lib/apt/lists/*
USER nobody
ENTRYPOINT []
CMD ["etcd", "--data-dir=/tmp/etcd"]
