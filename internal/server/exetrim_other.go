//go:build !linux

package server

// trimExecutable is Linux's (see exetrim_linux.go); elsewhere the
// kernel's accounting of a binary's pages is left as it is.
func trimExecutable() int { return 0 }
