//go:build unix

package main

import "syscall"

// privateUmask makes every file tollgated creates private to its user.
func privateUmask() { syscall.Umask(0o077) }
