package store

import "testing"

func TestSQLiteRewrite(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"SELECT a FROM t WHERE x = $1 AND y = $2", "SELECT a FROM t WHERE x = ? AND y = ?"},
		{"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
		// Out of order or repeated: numbered, bound by number.
		{"WHERE a = $2 AND b = $1", "WHERE a = ?2 AND b = ?1"},
		{"WHERE a = $1 OR b = $1", "WHERE a = ?1 OR b = ?1"},
		{"SELECT 1", "SELECT 1"},
	} {
		if got := (sqlite{}).rewrite(tt.in); got != tt.want {
			t.Errorf("rewrite(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
