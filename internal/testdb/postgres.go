package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// PostgreSQL databases of a prepared schema are copies of a template
// made once per process (CREATE DATABASE ... TEMPLATE), and are reused:
// when a test ends, its database is emptied back to the template's rows
// and handed to the next test. On a loaded machine, CREATE DATABASE took
// one to three seconds and DROP DATABASE one; emptying the tables of a
// database a test used takes a tenth of that. A database whose schema a
// test changed is dropped instead of reused.
//
// Every database is named after the process that made it (a hash of the
// host name, the pid) and when, so that a later process can drop what an
// ended one left: a test process has no hook at its end, so its template
// and pool outlive it until then.

// pgTemplate is a prepared database and its pool of copies.
type pgTemplate struct {
	base, name string
	// reset empties a copy back to the template's rows (one batch of
	// statements), fingerprint is the template's schema as
	// schemaFingerprint computes it.
	reset, fingerprint string

	mu   sync.Mutex
	free []string
}

// preparedPostgres returns the prepared PostgreSQL template, preparing
// it on first use.
func preparedPostgres(base string) (*pgTemplate, error) {
	schema.mu.Lock()
	defer schema.mu.Unlock()
	if err := schema.err["postgres"]; err != nil {
		return nil, err
	}
	if schema.postgres != nil {
		return schema.postgres, nil
	}
	tmpl, err := preparePostgres(base, schema.prepare)
	if err != nil {
		setErr("postgres", err)
		return nil, err
	}
	schema.postgres = tmpl
	return tmpl, nil
}

func preparePostgres(base string, prepare func(context.Context, string) error) (*pgTemplate, error) {
	ctx := context.Background()
	dropLeftovers(base)
	name, err := createPostgres(base, "", templatePrefix)
	if err != nil {
		return nil, err
	}
	tmpl := &pgTemplate{base: base, name: name}
	err = prepare(ctx, postgresURL(base, name))
	if err == nil {
		err = withDB(postgresURL(base, name), func(db *sql.DB) error {
			var err error
			if tmpl.reset, err = resetScript(ctx, db); err != nil {
				return err
			}
			tmpl.fingerprint, err = schemaFingerprint(ctx, db)
			return err
		})
	}
	if err != nil {
		_ = dropPostgres(base, name)
		return nil, fmt.Errorf("prepare postgres: %w", err)
	}
	return tmpl, nil
}

// lease returns a database in the template's state: one from the pool,
// or a new copy.
func (p *pgTemplate) lease() (string, error) {
	p.mu.Lock()
	if n := len(p.free); n > 0 {
		name := p.free[n-1]
		p.free = p.free[:n-1]
		p.mu.Unlock()
		return name, nil
	}
	p.mu.Unlock()
	return createPostgres(p.base, p.name, testPrefix)
}

// release empties a leased database back to the template's state and
// pools it, or drops it if that fails or the test changed its schema.
func (p *pgTemplate) release(name string) error {
	if err := p.resetDB(name); err != nil {
		if derr := dropPostgres(p.base, name); derr != nil {
			return errors.Join(err, derr)
		}
		return nil
	}
	p.mu.Lock()
	p.free = append(p.free, name)
	p.mu.Unlock()
	return nil
}

func (p *pgTemplate) resetDB(name string) error {
	ctx := context.Background()
	// The test's server has stopped, but a connection it closed may
	// still be ending, and a test may have left one open: none may
	// write after the reset.
	err := withDB(p.base, func(db *sql.DB) error {
		_, err := db.ExecContext(ctx,
			`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, name)
		return err
	})
	if err != nil {
		return err
	}
	return withDB(postgresURL(p.base, name), func(db *sql.DB) error {
		fp, err := schemaFingerprint(ctx, db)
		if err != nil {
			return err
		}
		if fp != p.fingerprint {
			return fmt.Errorf("%s: the test changed the schema", name)
		}
		_, err = db.ExecContext(ctx, p.reset)
		return err
	})
}

// resetScript returns the statements that bring a copy of the database
// db is connected to back to its present rows: every table emptied
// (DELETE, not TRUNCATE: TRUNCATE makes new files for every table and
// index, which took longer than a new database), the rows the schema's
// preparation inserted put back, and every sequence set back, all in one
// transaction with triggers and foreign keys off
// (session_replication_role replica).
func resetScript(ctx context.Context, db *sql.DB) (string, error) {
	var b strings.Builder
	b.WriteString("BEGIN;\nSET LOCAL session_replication_role = replica;\nSET LOCAL synchronous_commit = off;\n")
	tables, err := queryStrings(ctx, db,
		`SELECT quote_ident(schemaname) || '.' || quote_ident(tablename) FROM pg_tables
		 WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1`)
	if err != nil {
		return "", err
	}
	for _, table := range tables {
		var rows sql.NullString
		if err := db.QueryRowContext(ctx, `SELECT json_agg(t) FROM `+table+` t`).Scan(&rows); err != nil {
			return "", fmt.Errorf("reset script: %s: %w", table, err)
		}
		fmt.Fprintf(&b, "DELETE FROM %s;\n", table)
		if rows.Valid {
			fmt.Fprintf(&b, "INSERT INTO %s SELECT * FROM json_populate_recordset(NULL::%s, %s);\n", table, table, quoteLiteral(rows.String))
		}
	}
	seqs, err := queryStrings(ctx, db,
		`SELECT quote_ident(schemaname) || '.' || quote_ident(sequencename) || ',' || COALESCE(last_value, start_value) || ',' || (last_value IS NOT NULL)
		 FROM pg_sequences ORDER BY 1`)
	if err != nil {
		return "", err
	}
	for _, s := range seqs {
		parts := strings.Split(s, ",")
		if len(parts) != 3 {
			return "", fmt.Errorf("reset script: sequence %q", s)
		}
		fmt.Fprintf(&b, "SELECT setval(%s, %s, %s);\n", quoteLiteral(parts[0]), parts[1], parts[2])
	}
	b.WriteString("COMMIT;\n")
	return b.String(), nil
}

// schemaFingerprint hashes the definitions of the database's own
// relations, columns, indexes, constraints, functions and triggers.
func schemaFingerprint(ctx context.Context, db *sql.DB) (string, error) {
	defs, err := queryStrings(ctx, db, `
		SELECT n.nspname || '.' || c.relname || ':' || c.relkind::text || ':' ||
		       COALESCE((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull::text, ',' ORDER BY a.attnum)
		                 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '') || ':' ||
		       COALESCE(pg_get_indexdef(c.oid), '')
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'
		UNION ALL
		SELECT 'constraint ' || conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
		FROM pg_constraint WHERE connamespace NOT IN (SELECT oid FROM pg_namespace WHERE nspname IN ('pg_catalog', 'information_schema'))
		UNION ALL
		SELECT 'trigger ' || tgrelid::regclass::text || ' ' || tgname FROM pg_trigger WHERE NOT tgisinternal
		UNION ALL
		SELECT 'function ' || p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
		WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
		ORDER BY 1`)
	if err != nil {
		return "", fmt.Errorf("schema fingerprint: %w", err)
	}
	sum := sha256.Sum256([]byte(strings.Join(defs, "\n")))
	return hex.EncodeToString(sum[:]), nil
}

func queryStrings(ctx context.Context, db *sql.DB, query string) ([]string, error) {
	rows, err := db.QueryContext(ctx, query)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// quoteLiteral is s as an SQL string literal (standard_conforming_strings
// is on, PostgreSQL's default since 9.1: only quotes are doubled).
func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}

// withDB runs fn with a single connection to the database at dsn.
func withDB(dsn string, fn func(*sql.DB) error) error {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	return fn(db)
}

// Database names: myelin_test_ (or myelin_tmpl_ for a template), the
// Unix time of making, the process's tag, a random suffix.
const (
	testPrefix     = "myelin_test_"
	templatePrefix = "myelin_tmpl_"
	// leftoverAge is the age past which any process's database is taken
	// to be left behind: longer than a test binary runs (CI's timeouts
	// are 20 minutes), for processes of other hosts whose liveness this
	// one cannot see.
	leftoverAge = 2 * time.Hour
)

// procTag names this process among those sharing the PostgreSQL server:
// a hash of the host name and the pid.
var procTag = sync.OnceValue(func() string {
	host, _ := os.Hostname()
	sum := sha256.Sum256([]byte(host))
	return hex.EncodeToString(sum[:4]) + "_" + strconv.Itoa(os.Getpid())
})

func newName(prefix string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s%d_%s_%s", prefix, time.Now().Unix(), procTag(), hex.EncodeToString(b[:]))
}

// createPostgres creates a database named with prefix, a copy of
// template if it is not empty, and returns its name.
func createPostgres(base, template, prefix string) (string, error) {
	name := newName(prefix)
	stmt := "CREATE DATABASE " + name
	if template != "" {
		stmt += " TEMPLATE " + template
	}
	err := withDB(base, func(db *sql.DB) error {
		_, err := db.ExecContext(context.Background(), stmt)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("create database: %w", err)
	}
	return name, nil
}

func dropPostgres(base, name string) error {
	err := withDB(base, func(db *sql.DB) error {
		_, err := db.ExecContext(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		return err
	})
	if err != nil {
		return fmt.Errorf("drop %s: %w", name, err)
	}
	return nil
}

// dropLeftovers drops the test databases of ended processes: those of
// this host whose process is gone, and any older than leftoverAge. Best
// effort: what fails is tried again by the next process.
func dropLeftovers(base string) {
	host, _, _ := strings.Cut(procTag(), "_")
	var names []string
	_ = withDB(base, func(db *sql.DB) error {
		var err error
		names, err = queryStrings(context.Background(), db,
			`SELECT datname FROM pg_database WHERE datname LIKE 'myelin\_test\_%' OR datname LIKE 'myelin\_tmpl\_%'`)
		return err
	})
	for _, name := range names {
		// prefix, unix time, host hash, pid, random.
		f := strings.Split(strings.TrimPrefix(strings.TrimPrefix(name, testPrefix), templatePrefix), "_")
		if len(f) != 4 {
			continue // a database of the older naming, or not ours
		}
		unix, err1 := strconv.ParseInt(f[0], 10, 64)
		pid, err2 := strconv.Atoi(f[2])
		if err1 != nil || err2 != nil {
			continue
		}
		old := time.Since(time.Unix(unix, 0)) > leftoverAge
		gone := f[1] == host && pid != os.Getpid() && !alive(pid)
		if old || gone {
			_ = dropPostgres(base, name)
		}
	}
}

// alive reports whether a process of this host has the pid.
func alive(pid int) bool {
	proc, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	err = proc.Signal(syscall.Signal(0))
	return err == nil || errors.Is(err, syscall.EPERM)
}

// postgresURL is base (which NewURL has parsed) with its database
// replaced by name.
func postgresURL(base, name string) string {
	u, _ := url.Parse(base)
	u.Path = "/" + name
	return u.String()
}
