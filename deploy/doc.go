// Package deploy holds how proxymatic is shipped and run: the Dockerfiles'
// entrypoint and health check, docker-compose, Kubernetes, systemd and CI
// examples, and the demo's backend. It has no Go API; its tests check that
// the manifests parse and reference what exists, and run the combined
// entrypoint on this machine against real HAProxy and nginx. See README.md.
package deploy
