package discover_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/discover"
	"github.com/mica-pki/mica/inventory/inventorytest"
)

// TestSchedulerReplicasRace: two replicas' schedulers tick at the same
// due time; each due schedule becomes exactly one queued job, and a
// schedule whose target the allow-list no longer admits queues none.
func TestSchedulerReplicasRace(t *testing.T) {
	t.Parallel()
	for name, s := range inventorytest.Stores(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			for _, tgt := range []string{"127.0.0.1", "10.1.2.3"} {
				if _, err := s.CreateSchedule(ctx, inventory.Schedule{Kind: "scan", Spec: inventory.JobSpec{Targets: []string{tgt}, Ports: []int{443}},
					Interval: time.Hour, Enabled: true}, inventory.Event{Actor: "test"}); err != nil {
					t.Fatal(err)
				}
			}
			later := time.Now().Add(61 * time.Minute)
			runner := &discover.Runner{Allow: discover.LoopbackOnly()}
			var wg sync.WaitGroup
			counts := make([]int, 2)
			for i := range counts {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sch := &discover.Scheduler{Store: s, Check: runner.Check, Now: func() time.Time { return later }}
					n, err := sch.Tick(ctx)
					if err != nil {
						t.Errorf("replica %d: Tick: %v", i, err)
					}
					counts[i] = n
				}()
			}
			wg.Wait()
			jobs, err := s.DiscoveryJobs(ctx, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			if counts[0]+counts[1] != 1 || len(jobs) != 1 || string(jobs[0].Spec) != `{"targets":["127.0.0.1"],"ports":[443]}` {
				t.Fatalf("replicas queued %v, store has %d jobs %+v; want exactly one job for 127.0.0.1", counts, len(jobs), jobs)
			}
			scs, _ := s.Schedules(ctx)
			if scs[1].LastError == "" || scs[1].Runs != 1 || scs[0].LastJobID != jobs[0].ID {
				t.Errorf("schedules after tick: %+v", scs)
			}
			// Same instant again: nothing is due any more.
			sch := &discover.Scheduler{Store: s, Check: runner.Check, Now: func() time.Time { return later }}
			if n, err := sch.Tick(ctx); n != 0 || err != nil {
				t.Errorf("second tick queued %d, %v", n, err)
			}
		})
	}
}
