// Package docker is the end-to-end test of the shipped images: it builds
// them the way `make images` does (no registry: the base images come from
// Debian packages), starts deploy/docker-compose.yml with a stand-in
// Marathon, a real etcd and backends in containers of their own, runs the
// combined image as a drop-in for meltwater/proxymatic, and checks what the
// images hold. It has no Go API; see README.md.
//
// The tests skip when no Docker engine answers, unless CI=true, where that
// is a failure.
package docker
