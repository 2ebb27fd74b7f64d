package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"github.com/mica-pki/mica/internal/humantime"
)

// Schedule bounds: a recurring scan runs at most once a minute and at
// least once a year; a store holds at most MaxSchedules of them.
const (
	MinScheduleInterval = time.Minute
	MaxScheduleInterval = 366 * 24 * time.Hour
	MaxSchedules        = 1000
)

// Schedule is a recurring discovery scan. When it is due, one replica
// queues an ordinary discovery job from its spec (EnqueueSchedule) and
// moves NextRun on by Interval.
type Schedule struct {
	ID        int64         `json:"id"`
	Kind      string        `json:"kind"` // scan
	Spec      JobSpec       `json:"spec"`
	Interval  time.Duration `json:"-"`
	Enabled   bool          `json:"enabled"`
	NextRun   time.Time     `json:"next_run"`
	Runs      int64         `json:"runs"`
	LastRun   *time.Time    `json:"last_run,omitempty"`
	LastJobID int64         `json:"last_job_id,omitempty"`
	LastError string        `json:"last_error,omitempty"`
	CreatedBy string        `json:"created_by"`
	CreatedAt time.Time     `json:"created_at"`
}

// MarshalJSON adds the interval as people write it ("1d", "6h", "1h30m";
// the API reads the same spelling back) and, for programs, in seconds.
func (sc Schedule) MarshalJSON() ([]byte, error) {
	type plain Schedule
	return json.Marshal(struct {
		plain
		Interval        string `json:"interval"`
		IntervalSeconds int64  `json:"interval_seconds"`
	}{plain(sc), humantime.Format(sc.Interval), int64(sc.Interval / time.Second)})
}

type scheduleRow struct {
	ID        int64  `db:"id"`
	Kind      string `db:"kind"`
	Spec      string `db:"spec"`
	Interval  int64  `db:"interval_seconds"`
	Enabled   int    `db:"enabled"`
	NextRun   dbTime `db:"next_run"`
	Runs      int64  `db:"runs"`
	LastRun   dbTime `db:"last_run"`
	LastJobID int64  `db:"last_job_id"`
	LastError string `db:"last_error"`
	CreatedBy string `db:"created_by"`
	CreatedAt dbTime `db:"created_at"`
}

const scheduleColumns = `id, kind, spec, interval_seconds, enabled, next_run, runs, last_run, last_job_id, last_error, created_by, created_at`

func (r *scheduleRow) schedule() Schedule {
	sc := Schedule{ID: r.ID, Kind: r.Kind, Interval: time.Duration(r.Interval) * time.Second, Enabled: r.Enabled == 1,
		NextRun: r.NextRun.Time, Runs: r.Runs, LastRun: r.LastRun.ptr(), LastJobID: r.LastJobID, LastError: r.LastError,
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.Time}
	_ = json.Unmarshal([]byte(r.Spec), &sc.Spec)
	return sc
}

// ValidateSchedule checks a schedule's kind, spec and interval.
// Errors: ErrInvalid naming what is wrong.
func ValidateSchedule(sc Schedule) error {
	switch {
	case sc.Kind != "scan":
		return fmt.Errorf("%w: a schedule's kind must be scan", ErrInvalid)
	case len(sc.Spec.Targets) == 0 || len(sc.Spec.Targets) > 256:
		return fmt.Errorf("%w: give 1 to 256 targets", ErrInvalid)
	case len(sc.Spec.Ports) > 64:
		return fmt.Errorf("%w: give at most 64 ports", ErrInvalid)
	case len(sc.Spec.Paths) > 0:
		return fmt.Errorf("%w: a scan schedule has no paths", ErrInvalid)
	case sc.Interval < MinScheduleInterval || sc.Interval > MaxScheduleInterval || sc.Interval%time.Second != 0:
		return fmt.Errorf("%w: interval must be whole seconds from 1m to 8784h", ErrInvalid)
	}
	for _, t := range sc.Spec.Targets {
		if t == "" || len(t) > 255 {
			return fmt.Errorf("%w: empty or over-long target", ErrInvalid)
		}
		if err := checkText("target", t); err != nil {
			return err
		}
	}
	for _, p := range sc.Spec.Ports {
		if p < 1 || p > 65535 {
			return fmt.Errorf("%w: port %d out of range", ErrInvalid, p)
		}
	}
	return nil
}

// CreateSchedule stores a recurring scan, first due at now+Interval
// (audited, action discovery.schedule.create). Vet the targets against
// the scan allow-list before calling.
// Errors: ErrInvalid (see ValidateSchedule); ErrConflict at MaxSchedules.
func (s *Store) CreateSchedule(ctx context.Context, sc Schedule, ev Event) (*Schedule, error) {
	if err := ValidateSchedule(sc); err != nil {
		return nil, err
	}
	raw, _ := json.Marshal(sc.Spec)
	now := normTime(s.now())
	enabled := 0
	if sc.Enabled {
		enabled = 1
	}
	var id int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var n int
		if err := tx.GetContext(ctx, &n, `SELECT COUNT(*) FROM discovery_schedules`); err != nil {
			return fmt.Errorf("inventory: count schedules: %w", err)
		}
		if n >= MaxSchedules {
			return fmt.Errorf("%w: at most %d schedules", ErrConflict, MaxSchedules)
		}
		if err := tx.QueryRowxContext(ctx, s.q(`INSERT INTO discovery_schedules (kind, spec, interval_seconds, enabled, next_run, created_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id`), sc.Kind, string(raw), int64(sc.Interval/time.Second), enabled,
			s.timeArg(now.Add(sc.Interval)), ev.Actor, s.timeArg(now)).Scan(&id); err != nil {
			return fmt.Errorf("inventory: create schedule: %w", err)
		}
		defaultEvent(&ev, "discovery.schedule.create", fmt.Sprintf("schedule:%d", id))
		if ev.Details == nil {
			ev.Details, _ = json.Marshal(map[string]any{"spec": sc.Spec, "interval": humantime.Format(sc.Interval), "enabled": sc.Enabled})
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return nil, err
	}
	return s.Schedule(ctx, id)
}

// Schedule returns one schedule. Errors: ErrNotFound.
func (s *Store) Schedule(ctx context.Context, id int64) (*Schedule, error) {
	var r scheduleRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+scheduleColumns+` FROM discovery_schedules WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: schedule %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read schedule %d: %w", id, err)
	}
	sc := r.schedule()
	return &sc, nil
}

// Schedules lists all schedules by id.
func (s *Store) Schedules(ctx context.Context) ([]Schedule, error) {
	return s.selectSchedules(ctx, `SELECT `+scheduleColumns+` FROM discovery_schedules ORDER BY id LIMIT `+fmt.Sprint(MaxSchedules))
}

// DueSchedules lists the enabled schedules whose next run is at or before
// now, most overdue first.
func (s *Store) DueSchedules(ctx context.Context, now time.Time) ([]Schedule, error) {
	return s.selectSchedules(ctx, s.q(`SELECT `+scheduleColumns+` FROM discovery_schedules WHERE enabled = 1 AND next_run <= ?
		ORDER BY next_run, id LIMIT 100`), s.timeArg(now))
}

func (s *Store) selectSchedules(ctx context.Context, query string, args ...any) ([]Schedule, error) {
	var rows []scheduleRow
	if err := s.db.SelectContext(ctx, &rows, query, args...); err != nil {
		return nil, fmt.Errorf("inventory: list schedules: %w", err)
	}
	out := make([]Schedule, len(rows))
	for i := range rows {
		out[i] = rows[i].schedule()
	}
	return out, nil
}

// SetScheduleEnabled pauses or resumes a schedule (audited, action
// discovery.schedule.pause or .resume). A resumed schedule is next due one
// interval from now, so resuming never fires a backlog.
// Errors: ErrNotFound.
func (s *Store) SetScheduleEnabled(ctx context.Context, id int64, enabled bool, ev Event) (*Schedule, error) {
	action, flag := "discovery.schedule.pause", 0
	if enabled {
		action, flag = "discovery.schedule.resume", 1
	}
	defaultEvent(&ev, action, fmt.Sprintf("schedule:%d", id))
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		var r scheduleRow
		err := tx.GetContext(ctx, &r, s.q(`SELECT `+scheduleColumns+` FROM discovery_schedules WHERE id = ?`+s.forUpdate), id)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("%w: schedule %d", ErrNotFound, id)
		}
		if err != nil {
			return fmt.Errorf("inventory: read schedule %d: %w", id, err)
		}
		next := r.NextRun.Time
		if enabled && r.Enabled == 0 {
			next = normTime(s.now()).Add(time.Duration(r.Interval) * time.Second)
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE discovery_schedules SET enabled = ?, next_run = ? WHERE id = ?`),
			flag, s.timeArg(next), id); err != nil {
			return fmt.Errorf("inventory: update schedule %d: %w", id, err)
		}
		if ev.Details == nil {
			ev.Details, _ = json.Marshal(map[string]bool{"old_enabled": r.Enabled == 1, "new_enabled": enabled})
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
	if err != nil {
		return nil, err
	}
	return s.Schedule(ctx, id)
}

// DeleteSchedule removes a schedule (audited, action
// discovery.schedule.delete). Jobs it queued stay.
// Errors: ErrNotFound.
func (s *Store) DeleteSchedule(ctx context.Context, id int64, ev Event) error {
	defaultEvent(&ev, "discovery.schedule.delete", fmt.Sprintf("schedule:%d", id))
	return s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`DELETE FROM discovery_schedules WHERE id = ?`), id)
		if err != nil {
			return fmt.Errorf("inventory: delete schedule %d: %w", id, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("%w: schedule %d", ErrNotFound, id)
		}
		return s.appendEventTx(ctx, tx, &ev)
	})
}

// EnqueueSchedule claims the due run of sc (as read by DueSchedules) and,
// in the same transaction, queues its discovery job (created by
// "schedule:<id>", audited as discovery.create). The claim is a
// conditional UPDATE on the run counter read, so of several replicas
// racing for one due time exactly one gets it; the others get
// ErrConflict. next_run moves to the first interval step after now, so a
// server that was down does not fire a backlog.
//
// refused, when not nil, is why the spec may not run now (the scan
// allow-list changed): the run is claimed and recorded in last_error and
// a denied discovery.schedule.run event, and no job is queued (nil job).
func (s *Store) EnqueueSchedule(ctx context.Context, sc Schedule, now time.Time, refused error) (*DiscoveryJob, error) {
	now = normTime(now)
	next := sc.NextRun
	for !next.After(now) {
		next = next.Add(sc.Interval)
	}
	lastErr := ""
	if refused != nil {
		lastErr = cleanText(refused.Error())
		if len(lastErr) > 500 {
			lastErr = lastErr[:500]
		}
	}
	raw, _ := json.Marshal(sc.Spec)
	var jobID int64
	err := s.inTx(ctx, func(tx *sqlx.Tx) error {
		res, err := tx.ExecContext(ctx, s.q(`UPDATE discovery_schedules SET runs = runs + 1, next_run = ?, last_run = ?, last_error = ?
			WHERE id = ? AND runs = ? AND enabled = 1 AND next_run <= ?`),
			s.timeArg(next), s.timeArg(now), lastErr, sc.ID, sc.Runs, s.timeArg(now))
		if err != nil {
			return fmt.Errorf("inventory: claim schedule %d: %w", sc.ID, err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: schedule %d run already claimed", ErrConflict, sc.ID)
		}
		actor := fmt.Sprintf("schedule:%d", sc.ID)
		if refused != nil {
			details, _ := json.Marshal(map[string]string{"error": lastErr})
			return s.appendEventTx(ctx, tx, &Event{Actor: actor, Action: "discovery.schedule.run", Object: actor, Outcome: "denied",
				Protocol: "system", Details: details})
		}
		if jobID, err = s.createDiscoveryJobTx(ctx, tx, sc.Kind, raw, now, Event{Actor: actor, Outcome: "ok", Protocol: "system"}); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE discovery_schedules SET last_job_id = ? WHERE id = ?`), jobID, sc.ID); err != nil {
			return fmt.Errorf("inventory: record job of schedule %d: %w", sc.ID, err)
		}
		return nil
	})
	if err != nil || refused != nil {
		return nil, err
	}
	return s.DiscoveryJob(ctx, jobID)
}
