package store

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrTargetNotEmpty is returned by CopyTo when the target database
// already holds a server's data.
var ErrTargetNotEmpty = errors.New("store: the target database is not empty")

// TableCopy is how one table was copied.
type TableCopy struct {
	Table string
	Rows  int64
	// Checksum is an order-independent digest of the rows' values,
	// computed the same way on both engines.
	Checksum string
}

// CopyProgress is told about each table as the copy goes: rows is the
// number copied so far, done is set once the table is complete and
// verified.
type CopyProgress func(table string, rows int64, done bool)

// CopyTo copies every table of db into target, a database of either
// engine that holds nothing yet (Open has just created its schema), and
// verifies each table's row count and checksum on both sides. Tables are
// found in the catalog, so a table a later migration adds is copied
// without a change here. The source must not be written meanwhile (the
// server stopped): the copy reads table by table, not from one snapshot.
func (db *DB) CopyTo(ctx context.Context, target *DB, progress CopyProgress) ([]TableCopy, error) {
	src, dst := db.r(), target.w()
	srcMigs, err := src.strings(ctx, `SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	dstMigs, err := dst.strings(ctx, `SELECT name FROM schema_migrations ORDER BY version`)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(srcMigs, dstMigs) {
		return nil, fmt.Errorf("store: the two databases' schemas differ (%d and %d migrations); open both with this binary first", len(srcMigs), len(dstMigs))
	}
	for _, t := range []string{"users", "events", "rooms"} {
		var n int64
		if err := dst.queryRow(ctx, `SELECT COUNT(*) FROM `+t, nil, &n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, fmt.Errorf("%w: its %s table has %d rows", ErrTargetNotEmpty, t, n)
		}
	}
	tables, err := catalogTables(ctx, db.dialect, src)
	if err != nil {
		return nil, err
	}
	dstTables, err := catalogTables(ctx, target.dialect, dst)
	if err != nil {
		return nil, err
	}
	if !slices.Equal(tables, dstTables) {
		return nil, fmt.Errorf("store: the two databases have different tables:\n%v\n%v", tables, dstTables)
	}
	order, err := parentsFirst(ctx, target, tables)
	if err != nil {
		return nil, err
	}
	// Rows a migration seeded (the search indexer's position) are
	// replaced by the source's, children before parents.
	for i := len(order) - 1; i >= 0; i-- {
		if _, err := dst.exec(ctx, `DELETE FROM `+order[i]); err != nil {
			return nil, fmt.Errorf("store: clearing %s: %w", order[i], err)
		}
	}
	var out []TableCopy
	for _, t := range order {
		tc, err := copyTable(ctx, db, target, t, progress)
		if err != nil {
			return out, fmt.Errorf("store: copying %s: %w", t, err)
		}
		out = append(out, tc)
	}
	return out, nil
}

// parentsFirst orders tables so that every table comes after those its
// foreign keys point at.
func parentsFirst(ctx context.Context, db *DB, tables []string) ([]string, error) {
	parents := map[string][]string{}
	for _, t := range tables {
		ps, err := catalogParents(ctx, db.dialect, db.r(), t)
		if err != nil {
			return nil, err
		}
		parents[t] = ps
	}
	var order []string
	placed := map[string]bool{}
	var place func(t string, depth int) error
	place = func(t string, depth int) error {
		if placed[t] {
			return nil
		}
		if depth > len(tables) {
			return fmt.Errorf("store: foreign keys form a cycle at %s", t)
		}
		for _, p := range parents[t] {
			if p != t {
				if err := place(p, depth+1); err != nil {
					return err
				}
			}
		}
		placed[t] = true
		order = append(order, t)
		return nil
	}
	for _, t := range tables {
		if err := place(t, 0); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// copyTable copies one table's rows in batches, one transaction per
// batch, then compares counts and checksums.
func copyTable(ctx context.Context, src, dst *DB, table string, progress CopyProgress) (TableCopy, error) {
	srcCols, err := catalogColumns(ctx, src.dialect, src.r(), table)
	if err != nil {
		return TableCopy{}, err
	}
	dstCols, err := catalogColumns(ctx, dst.dialect, dst.r(), table)
	if err != nil {
		return TableCopy{}, err
	}
	// The columns both sides store; a generated column (PostgreSQL's
	// search vector) is computed by the target itself.
	have := map[string]bool{}
	for _, c := range srcCols {
		if !c.generated {
			have[c.name] = true
		}
	}
	var cols []catalogColumn
	for _, c := range dstCols {
		if !c.generated && have[c.name] {
			cols = append(cols, c)
		}
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	list := strings.Join(names, ", ")
	head := `INSERT INTO ` + table + ` (` + list + `)`

	rows, err := src.r().query(ctx, `SELECT `+list+` FROM `+table)
	if err != nil {
		return TableCopy{}, err
	}
	defer rows.Close()
	var copied int64
	sum := newRowSum()
	const batch = 1000
	pending := make([][]any, 0, batch)
	flush := func() error {
		if len(pending) == 0 {
			return nil
		}
		err := dst.tx(ctx, func(c conn) error { return insertMany(ctx, c, head, "", len(cols), pending) })
		pending = pending[:0]
		return err
	}
	last := time.Now()
	for rows.Next() {
		vals, err := scanValues(rows, len(cols))
		if err != nil {
			return TableCopy{}, err
		}
		for i, c := range cols {
			vals[i] = forColumn(dst.dialect, c, vals[i])
		}
		sum.add(vals)
		pending = append(pending, vals)
		copied++
		if len(pending) == batch {
			if err := flush(); err != nil {
				return TableCopy{}, err
			}
			if progress != nil && time.Since(last) > time.Second {
				progress(table, copied, false)
				last = time.Now()
			}
		}
	}
	if err := rows.Err(); err != nil {
		return TableCopy{}, err
	}
	rows.Close()
	if err := flush(); err != nil {
		return TableCopy{}, err
	}
	if err := resetCounters(ctx, dst.dialect, dst.w(), table); err != nil {
		return TableCopy{}, err
	}
	got, err := tableSum(ctx, dst, table, cols)
	if err != nil {
		return TableCopy{}, err
	}
	tc := TableCopy{Table: table, Rows: copied, Checksum: sum.String()}
	if got.n != copied || got.String() != tc.Checksum {
		return tc, fmt.Errorf("verification failed: %d rows (checksum %s) read, %d rows (checksum %s) in the target", copied, tc.Checksum, got.n, got.String())
	}
	if progress != nil {
		progress(table, copied, true)
	}
	return tc, nil
}

// tableSum reads the table back and sums its rows as copyTable did.
func tableSum(ctx context.Context, db *DB, table string, cols []catalogColumn) (*rowSum, error) {
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = c.name
	}
	rows, err := db.r().query(ctx, `SELECT `+strings.Join(names, ", ")+` FROM `+table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	sum := newRowSum()
	for rows.Next() {
		vals, err := scanValues(rows, len(cols))
		if err != nil {
			return nil, err
		}
		sum.add(vals)
	}
	return sum, rows.Err()
}

// scanValues reads the current row's n columns as the driver gives them.
func scanValues(rows *sql.Rows, n int) ([]any, error) {
	vals := make([]any, n)
	ptrs := make([]any, n)
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	return vals, rows.Scan(ptrs...)
}

// forColumn converts a value read from one engine into what the other
// stores in column c: booleans are 0/1 in SQLite and true/false in
// PostgreSQL; everything else (integers, floats, text, bytes) means the
// same on both.
func forColumn(d dialect, c catalogColumn, v any) any {
	if !c.boolean {
		return v
	}
	switch b := v.(type) {
	case bool:
		if d.name() == "postgres" {
			return b
		}
		if b {
			return int64(1)
		}
		return int64(0)
	case int64:
		if d.name() == "postgres" {
			return b != 0
		}
	}
	return v
}

// rowSum is an order-independent digest of rows: the sum, modulo 2^64,
// of each row's SHA-256 prefix. The two engines return rows in different
// orders (and sort text differently), so a running hash would not do.
type rowSum struct {
	n   int64
	sum uint64
}

func newRowSum() *rowSum { return &rowSum{} }

func (s *rowSum) add(vals []any) {
	h := sha256.New()
	var b []byte
	for _, v := range vals {
		b = b[:0]
		// One spelling per value whatever engine read it: booleans as
		// the integers SQLite keeps, text and bytes alike as bytes.
		switch x := v.(type) {
		case nil:
			b = append(b, 'n')
		case bool:
			b = append(b, 'i')
			if x {
				b = append(b, '1')
			} else {
				b = append(b, '0')
			}
		case int64:
			b = strconv.AppendInt(append(b, 'i'), x, 10)
		case float64:
			if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
				b = strconv.AppendInt(append(b, 'i'), int64(x), 10)
			} else {
				b = strconv.AppendFloat(append(b, 'f'), x, 'g', -1, 64)
			}
		case string:
			b = append(append(b, 's'), x...)
		case []byte:
			b = append(append(b, 's'), x...)
		case time.Time:
			b = strconv.AppendInt(append(b, 't'), x.UnixNano(), 10)
		default:
			b = fmt.Appendf(append(b, '?'), "%v", x)
		}
		var l [8]byte
		binary.BigEndian.PutUint64(l[:], uint64(len(b)))
		h.Write(l[:])
		h.Write(b)
	}
	s.sum += binary.BigEndian.Uint64(h.Sum(nil))
	s.n++
}

func (s *rowSum) String() string { return fmt.Sprintf("%016x", s.sum) }
