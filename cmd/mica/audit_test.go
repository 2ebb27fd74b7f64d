package main

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

// TestAuditVerifyDetectsTampering edits and then deletes an audit event
// directly in the SQLite file, behind the append-only triggers, and checks
// that 'mica audit verify' exits 3 naming the event each time.
func TestAuditVerifyDetectsTampering(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	c := newSoftCA(t)
	for _, cn := range []string{"a.test", "b.test", "c.test"} {
		leaf := filepath.Join(t.TempDir(), "leaf.pem")
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server", "--out", leaf)...)
	}
	r := c.must(c.data("audit", "verify")...)
	db, err := sql.Open("sqlite", filepath.Join(c.dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var ids []int64
	rows, err := db.Query(`SELECT id FROM events ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	if len(ids) < 4 {
		t.Fatalf("only %d audit events after init and three issuances", len(ids))
	}
	if want := fmt.Sprintf("%d events verified", len(ids)); !strings.Contains(r.stdout, want) {
		t.Fatalf("audit verify on an intact log: %q, want %q", r.stdout, want)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := db.Exec(`UPDATE events SET actor = 'mallory' WHERE id = ?`, ids[1]); err == nil {
		t.Fatal("UPDATE on events succeeded with the append-only trigger in place")
	}

	// An edited row: its content no longer matches its hash.
	mid := ids[len(ids)/2]
	var actor string
	if err := db.QueryRow(`SELECT actor FROM events WHERE id = ?`, mid).Scan(&actor); err != nil {
		t.Fatal(err)
	}
	exec(`DROP TRIGGER events_no_update`)
	exec(`UPDATE events SET actor = 'mallory' WHERE id = ?`, mid)
	wantExit(t, c.run(c.data("audit", "verify")...), 3, "tampered", fmt.Sprintf("event %d ", mid))

	// Undone, the chain verifies again.
	exec(`UPDATE events SET actor = ? WHERE id = ?`, actor, mid)
	c.must(c.data("audit", "verify")...)

	// A deleted middle row: its successor no longer links to it.
	exec(`DROP TRIGGER events_no_delete`)
	exec(`DELETE FROM events WHERE id = ?`, mid)
	wantExit(t, c.run(c.data("audit", "verify")...), 3, "tampered", fmt.Sprintf("event %d ", ids[len(ids)/2+1]), "removed")
}
