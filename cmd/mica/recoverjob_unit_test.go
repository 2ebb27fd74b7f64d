package main

import (
	"context"
	"testing"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// fakeRecoverStore records passes; locked says whether another replica
// holds the job lock.
type fakeRecoverStore struct {
	locked bool
	passes []inventory.RecoverOptions
}

func (f *fakeRecoverStore) TryLock(context.Context, string) (func(), bool, error) {
	return func() {}, !f.locked, nil
}

func (f *fakeRecoverStore) Recover(_ context.Context, o inventory.RecoverOptions) (inventory.Recovered, error) {
	f.passes = append(f.passes, o)
	return inventory.Recovered{}, nil
}

// TestRecoverJobUnderLock: a pass runs only under the job lock, with the
// documented bounds and the same first-seen map every time.
func TestRecoverJobUnderLock(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 6, 4, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		locked bool
		want   int
	}{{"lock free", false, 2}, {"another replica holds it", true, 0}} {
		f := &fakeRecoverStore{locked: tc.locked}
		j := newRecoverJob(f, nil)
		j.now = func() time.Time { return now }
		for range 2 {
			if _, err := j.pass(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		if len(f.passes) != tc.want {
			t.Fatalf("%s: %d passes, want %d", tc.name, len(f.passes), tc.want)
		}
		for _, o := range f.passes {
			if o.StaleAfter != 2*20*time.Second || o.TokenStaleAfter != 2*time.Minute || !o.Now.Equal(now) || o.Seen == nil {
				t.Errorf("%s: pass options %+v", tc.name, o)
			}
		}
		if tc.want == 2 {
			f.passes[0].Seen["o"] = now
			if _, ok := f.passes[1].Seen["o"]; !ok {
				t.Errorf("passes do not share the first-seen map")
			}
		}
	}
}
