package main

import (
	"context"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/inventory"
)

// The crash-recovery pass (inventory.Store.Recover) runs at start and
// every recoverEvery on whichever replica takes the "crash-recovery" job
// lock, so any replica finishes any other's debris. The bounds, also in
// docs/architecture.md "Crash consistency":
//
//   - reservations and processing orders: debris once older than
//     recoverStale (twice ca.MaxIssueDuration, past which no live request
//     can commit), finished by the next pass: at most 55 s after the
//     crash;
//   - consumed EST tokens: once older than recoverTokenStale (the HTTP
//     server's 60 s read timeout plus an issuance, plus margin): at most
//     2 min 15 s after the crash.
const (
	recoverEvery      = 15 * time.Second
	recoverStale      = 2 * ca.MaxIssueDuration
	recoverTokenStale = 2 * time.Minute
)

// recoverFastEnv names a test-only environment variable for the chaos
// harness (cmd/mica/chaos_test.go), which cannot wait the real bounds
// within its 60–90 s: set to "1", passes run every second and each pass
// sees the clock 5 minutes further ahead, so every reservation, order
// and token consumption older than the process counts as debris and is
// finished within two passes. It is read once, when the job starts, and
// is only safe on a store no live request is using. Never set it in
// production.
const recoverFastEnv = "MICA_TEST_RECOVER_FAST"

// recoverStore is what the pass needs of the inventory.
type recoverStore interface {
	// TryLock takes a job lock without waiting (inventory.Store.TryLock).
	TryLock(ctx context.Context, name string) (release func(), ok bool, err error)
	// Recover runs one recovery pass (inventory.Store.Recover).
	Recover(ctx context.Context, o inventory.RecoverOptions) (inventory.Recovered, error)
}

// recoverJob keeps, between passes, when it first saw each processing
// order that had no reservation yet.
type recoverJob struct {
	store recoverStore
	log   *slog.Logger
	now   func() time.Time
	seen  map[string]time.Time
	every time.Duration // recoverEvery, unless recoverFastEnv
}

func newRecoverJob(store recoverStore, log *slog.Logger) *recoverJob {
	if log == nil {
		log = slog.Default()
	}
	j := &recoverJob{store: store, log: log, now: time.Now, seen: map[string]time.Time{}, every: recoverEvery}
	if os.Getenv(recoverFastEnv) == "1" {
		log.Warn(recoverFastEnv + " is set: crash recovery runs every second on a clock running ahead (tests only)")
		var passes atomic.Int64
		j.every = time.Second
		j.now = func() time.Time { return time.Now().Add(time.Duration(passes.Add(1)) * 5 * time.Minute) }
	}
	return j
}

// run passes at start and every j.every until ctx ends.
func (j *recoverJob) run(ctx context.Context) {
	t := time.NewTicker(j.every)
	defer t.Stop()
	for {
		if _, err := j.pass(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("crash recovery pass failed; retrying at the next tick", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// pass runs one recovery pass under the job lock; another replica holding
// the lock is running it, and this one skips.
func (j *recoverJob) pass(ctx context.Context) (inventory.Recovered, error) {
	release, ok, err := j.store.TryLock(ctx, "crash-recovery")
	if err != nil || !ok {
		return inventory.Recovered{}, err
	}
	defer release()
	r, err := j.store.Recover(ctx, inventory.RecoverOptions{Now: j.now(), StaleAfter: recoverStale,
		TokenStaleAfter: recoverTokenStale, Seen: j.seen})
	if r.Total() > 0 {
		j.log.Info("crash recovery finished interrupted requests", "failed_reservations", r.FailedReservations,
			"linked_orders", r.LinkedOrders, "invalid_orders", r.InvalidOrders, "released_tokens", r.ReleasedTokens)
	}
	return r, err
}
