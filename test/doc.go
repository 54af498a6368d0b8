// Package test holds Tollgate's end-to-end tests: they build the real
// binaries once, start them on ephemeral loopback ports, and drive them with
// real clients (Go's HTTP/1.1 and HTTP/2 clients, curl, WebSocket, the
// hosted platform's Go SDK).
package test
