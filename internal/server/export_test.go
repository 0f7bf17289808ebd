package server

// BeforeDBClose sets a function Shutdown calls just before it closes the
// database, and returns a function reporting how many requests were
// running then.
func BeforeDBClose(s *Server, f func()) func() int64 {
	var running int64 = -1
	s.beforeDBClose = func() {
		running = s.handlers.n.Load()
		f()
	}
	return func() int64 { return running }
}
