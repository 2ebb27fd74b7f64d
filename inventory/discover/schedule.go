package discover

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// ScheduleStore is the part of the inventory a Scheduler needs.
// *inventory.Store satisfies it. EnqueueSchedule must claim each due run
// for exactly one caller across replicas (ErrConflict for the others).
type ScheduleStore interface {
	DueSchedules(ctx context.Context, now time.Time) ([]inventory.Schedule, error)
	EnqueueSchedule(ctx context.Context, sc inventory.Schedule, now time.Time, refused error) (*inventory.DiscoveryJob, error)
}

var _ ScheduleStore = (*inventory.Store)(nil)

// Scheduler turns due recurring scans into ordinary queued discovery jobs,
// which the Runners of all replicas then pick up. Every `mica serve`
// replica runs one; the store's claim makes each due time one job.
type Scheduler struct {
	Store ScheduleStore
	// Check vets a spec against the scan allow-list as it is now (the
	// list may have shrunk since the schedule was made): Runner.Check.
	Check func(kind string, spec inventory.JobSpec) error
	Now   func() time.Time // nil: time.Now
	Log   *slog.Logger
}

// Tick enqueues every schedule due now and returns how many jobs it
// queued. Runs another replica claimed first are skipped silently.
func (s *Scheduler) Tick(ctx context.Context) (int, error) {
	now := time.Now()
	if s.Now != nil {
		now = s.Now()
	}
	due, err := s.Store.DueSchedules(ctx, now)
	if err != nil {
		return 0, err
	}
	queued := 0
	for _, sc := range due {
		var refused error
		if s.Check != nil {
			refused = s.Check(sc.Kind, sc.Spec)
		}
		job, err := s.Store.EnqueueSchedule(ctx, sc, now, refused)
		switch {
		case errors.Is(err, inventory.ErrConflict):
			continue
		case err != nil:
			return queued, err
		case job != nil:
			queued++
			s.log().Info("discovery schedule queued a job", "schedule", sc.ID, "job", job.ID)
		default:
			s.log().Warn("discovery schedule refused by the allow-list", "schedule", sc.ID, "err", refused)
		}
	}
	return queued, nil
}

// Poll ticks every interval until ctx ends.
func (s *Scheduler) Poll(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := s.Tick(ctx); err != nil && ctx.Err() == nil {
			s.log().Error("discovery: run schedules", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Scheduler) log() *slog.Logger {
	if s.Log == nil {
		return slog.Default()
	}
	return s.Log
}
