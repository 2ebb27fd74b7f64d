package main

import (
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// TestServeRecoversKilledIssuance: `mica cert issue` is killed (SIGKILL)
// between signing and commit, which leaves a "requested" reservation.
// Once that reservation is older than the recovery bound (the test ages
// it rather than wait), a starting `mica serve` finishes it on its first
// pass: failed, its serial kept, the pass logged.
func TestServeRecoversKilledIssuance(t *testing.T) {
	t.Parallel()
	c := newSoftCA(t)
	cfgPath := filepath.Join(c.dir, "mica.yaml")
	yaml, _ := os.ReadFile(cfgPath)
	if err := os.WriteFile(cfgPath, []byte(strings.Replace(string(yaml), "format: text", "format: json", 1)), 0o640); err != nil {
		t.Fatal(err)
	}
	r := c.runEnv([]string{"MICA_TEST_CRASH_AT=after-sign"}, c.data("cert", "issue",
		"--csr", makeCSR(t, csrOpts{cn: "killed.test"}), "--profile", "server")...)
	if r.code == 0 {
		t.Fatalf("the process survived the crash point:\n%v", r)
	}
	got := c.list("--state", "requested")
	if len(got) != 1 {
		t.Fatalf("after SIGKILL: %d requested rows, want 1", len(got))
	}
	db, err := sql.Open("sqlite", filepath.Join(c.dir, "mica.db"))
	if err != nil {
		t.Fatal(err)
	}
	aged := time.Now().Add(-2 * recoverStale).UTC().Format("2006-01-02T15:04:05.000000Z")
	if _, err := db.Exec(`UPDATE certificates SET created_at = ? WHERE state = 'requested'`, aged); err != nil {
		t.Fatal(err)
	}
	db.Close()

	rep := startReplica(t, c.dir)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(rep.logs.String(), "crash recovery finished interrupted requests") {
		if time.Now().After(deadline) {
			t.Fatalf("no recovery pass logged within 20s of start:\n%s", rep.logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	failed := c.list("--state", string(inventory.StateFailed))
	if len(failed) != 1 || failed[0].Serial != got[0].Serial {
		t.Fatalf("failed rows after recovery = %+v, want the killed reservation %s", failed, got[0].Serial)
	}
	if n := len(c.list("--state", "requested")); n != 0 {
		t.Errorf("%d requested rows left after recovery", n)
	}
}
