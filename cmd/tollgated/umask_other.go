//go:build !unix

package main

// privateUmask does nothing where there is no umask (Windows): files get
// the permissions tollgated asks for when it creates them.
func privateUmask() {}
