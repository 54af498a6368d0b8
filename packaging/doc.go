// Package packaging holds what an operator installs besides the binaries:
// systemd units (systemd/), the users they run as (sysusers/), example
// configurations (tollgated.yaml, agent.yml) and the compose example
// (docker/), with the root's Dockerfile. It has no Go code; its tests check
// these files with the tools that read them (systemd-analyze) and
// cross-compile the binaries for another platform (docs/install.md).
package packaging
