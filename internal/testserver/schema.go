package testserver

// Every test server migrates its database on start: the databases
// testdb hands out in a test binary that links this package are copies
// of one migrated once (package migrated), and the start's migration
// finds nothing left to do. On PostgreSQL that saves about a second per
// server; a package of end-to-end tests starts hundreds.
import _ "github.com/myelin-chat/myelin/internal/testdb/migrated"
