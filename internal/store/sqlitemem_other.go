//go:build !(linux && (amd64 || arm64 || loong64 || ppc64le || s390x || riscv64 || 386 || arm)) || libc.membrk || libc.memgrind

package store

// trimLibc is Linux's (see sqlitemem_linux.go): libc's allocator is
// another one elsewhere.
func trimLibc() {}
