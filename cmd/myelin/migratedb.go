package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/myelin-chat/myelin/internal/config"
	"github.com/myelin-chat/myelin/internal/store"
)

// migrateDB copies the configured database into another, of either
// engine (docs/operations.md, "Moving to PostgreSQL").
func migrateDB(args []string, stdout, stderr io.Writer) error {
	fs, path := newFlags("migrate-db", stderr)
	to := fs.String("to", "", "the target database: postgres://... or a SQLite file path; it must be empty")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *to == "" {
		return errors.New("migrate-db: --to is required (postgres://user@host/db or a SQLite file path)")
	}
	cfg, err := config.Load(*path, nil)
	if err != nil {
		return err
	}
	from := cfg.DatabaseURL()
	if from == *to || (store.SQLitePath(from) != "" && store.SQLitePath(from) == store.SQLitePath(*to)) {
		return errors.New("migrate-db: the target is the database in use")
	}
	if running(cfg) {
		return fmt.Errorf("migrate-db: a server answers on %s; stop it first, so that nothing is written during the copy", cfg.Listen.Client)
	}
	if p := store.SQLitePath(*to); p != "" {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("migrate-db: %s already exists; the target must be a new file", p)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	src, err := store.Open(ctx, from, 4, store.Synchronous(cfg.Database.SQLiteSynchronous))
	if err != nil {
		return fmt.Errorf("migrate-db: source: %w", err)
	}
	defer src.Close()
	dst, err := store.Open(ctx, *to, 4)
	if err != nil {
		return fmt.Errorf("migrate-db: target: %w", err)
	}
	defer dst.Close()
	fmt.Fprintf(stdout, "copying %s to %s\n", engineName(from), engineName(*to))
	started := time.Now()
	tables, err := src.CopyTo(ctx, dst, func(table string, rows int64, done bool) {
		if done {
			fmt.Fprintf(stdout, "  %-36s %10d rows  verified\n", table, rows)
		} else {
			fmt.Fprintf(stdout, "  %-36s %10d rows...\n", table, rows)
		}
	})
	if err != nil {
		return fmt.Errorf("migrate-db: %w", err)
	}
	var total int64
	for _, t := range tables {
		total += t.Rows
	}
	fmt.Fprintf(stdout, "copied %d tables, %d rows, in %s; every table's row count and checksum match.\n",
		len(tables), total, time.Since(started).Round(time.Millisecond))
	fmt.Fprintf(stdout, "\nTo run on the new database, set in your configuration\n\n  database:\n    url: %q\n\n"+
		"(or MYELIN_DATABASE_URL), keep data_dir (media and keys stay there), and start the server.\n"+
		"The old database is untouched; keep it until the server runs well on the new one.\n", *to)
	return nil
}

func engineName(url string) string {
	if store.IsPostgres(url) {
		return "PostgreSQL"
	}
	return "SQLite " + store.SQLitePath(url)
}

// running reports whether a Myelin answers on the configured client
// listener (over TLS when it serves TLS): copying a database that is
// being written would miss rows.
func running(cfg *config.Config) bool {
	base := localClientURL(cfg)
	resp, err := localClient(base, 2*time.Second, true).Get(base + "/_matrix/client/versions")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}
