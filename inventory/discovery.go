package inventory

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// Discovery job states.
const (
	JobQueued  = "queued"
	JobRunning = "running"
	JobDone    = "done"
	JobFailed  = "failed"
)

// JobError is one target that could not be read: data about the scan,
// not a reason to stop it.
type JobError struct {
	Target string `json:"target"`
	Error  string `json:"error"`
}

// JobSpec says what a discovery job looks at: network targets (host,
// host:port, IP or CIDR) and ports for a scan, paths for a file import.
type JobSpec struct {
	Targets []string `json:"targets,omitempty"`
	Ports   []int    `json:"ports,omitempty"`
	Paths   []string `json:"paths,omitempty"`
}

// DiscoveryJob is a scan or file import, queued by the CLI, UI or API and
// run by exactly one replica.
type DiscoveryJob struct {
	ID         int64           `json:"id"`
	Kind       string          `json:"kind"` // scan, files
	Spec       json.RawMessage `json:"spec"`
	State      string          `json:"state"`
	ClaimedBy  string          `json:"claimed_by,omitempty"`
	Found      int             `json:"found"`
	Errors     []JobError      `json:"errors"`
	CreatedBy  string          `json:"created_by"`
	CreatedAt  time.Time       `json:"created_at"`
	StartedAt  *time.Time      `json:"started_at,omitempty"`
	FinishedAt *time.Time      `json:"finished_at,omitempty"`
}

type jobRow struct {
	ID         int64  `db:"id"`
	Kind       string `db:"kind"`
	Spec       string `db:"spec"`
	State      string `db:"state"`
	ClaimedBy  string `db:"claimed_by"`
	Found      int    `db:"found"`
	Errors     string `db:"errors"`
	CreatedBy  string `db:"created_by"`
	CreatedAt  dbTime `db:"created_at"`
	StartedAt  dbTime `db:"started_at"`
	FinishedAt dbTime `db:"finished_at"`
}

const jobColumns = `id, kind, spec, state, claimed_by, found, errors, created_by, created_at, started_at, finished_at`

func (r *jobRow) job() DiscoveryJob {
	j := DiscoveryJob{ID: r.ID, Kind: r.Kind, Spec: json.RawMessage(r.Spec), State: r.State, ClaimedBy: r.ClaimedBy,
		Found: r.Found, CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt.Time, StartedAt: r.StartedAt.ptr(),
		FinishedAt: r.FinishedAt.ptr(), Errors: []JobError{}}
	_ = json.Unmarshal([]byte(r.Errors), &j.Errors)
	return j
}

// CreateDiscoveryJob queues a job of kind (scan or files) with its JSON
// spec and audits it (action discovery.create).
// Errors: ErrInvalid for an unknown kind or a spec that is not JSON.
func (s *Store) CreateDiscoveryJob(ctx context.Context, kind string, spec any, ev Event) (*DiscoveryJob, error) {
	if kind != "scan" && kind != "files" {
		return nil, fmt.Errorf("%w: unknown discovery kind %q", ErrInvalid, truncateForError(kind))
	}
	raw, err := json.Marshal(spec)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery spec: %v", ErrInvalid, err)
	}
	var id int64
	err = s.inTx(ctx, func(tx *sqlx.Tx) error {
		id, err = s.createDiscoveryJobTx(ctx, tx, kind, raw, normTime(s.now()), ev)
		return err
	})
	if err != nil {
		return nil, err
	}
	return s.DiscoveryJob(ctx, id)
}

// createDiscoveryJobTx queues a job created by ev.Actor at at and appends its
// discovery.create event (ev defaults: Object "discovery:{id}", Details
// the spec).
func (s *Store) createDiscoveryJobTx(ctx context.Context, tx *sqlx.Tx, kind string, raw []byte, at time.Time, ev Event) (int64, error) {
	var id int64
	if err := tx.QueryRowxContext(ctx, s.q(`INSERT INTO discovery_jobs (kind, spec, state, created_by, created_at)
		VALUES (?, ?, ?, ?, ?) RETURNING id`), kind, string(raw), JobQueued, ev.Actor, s.timeArg(at)).Scan(&id); err != nil {
		return 0, fmt.Errorf("inventory: create discovery job: %w", err)
	}
	defaultEvent(&ev, "discovery.create", fmt.Sprintf("discovery:%d", id))
	if ev.Details == nil {
		ev.Details = raw
	}
	return id, s.appendEventTx(ctx, tx, &ev)
}

// ClaimDiscoveryJob moves the oldest queued job to running for holder and
// returns it, or nil when none is queued. The claim is one conditional
// UPDATE (state must still be queued), so of several replicas polling
// together exactly one gets each job.
func (s *Store) ClaimDiscoveryJob(ctx context.Context, holder string) (*DiscoveryJob, error) {
	for range 5 {
		var id int64
		err := s.db.GetContext(ctx, &id, s.q(`SELECT id FROM discovery_jobs WHERE state = ? ORDER BY id LIMIT 1`), JobQueued)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("inventory: find queued discovery job: %w", err)
		}
		j, err := s.StartDiscoveryJob(ctx, id, holder)
		if errors.Is(err, ErrConflict) {
			continue // another replica won this one; look for the next
		}
		return j, err
	}
	return nil, nil
}

// StartDiscoveryJob claims the queued job id for holder (the CLI runs the
// job it just queued this way).
// Errors: ErrConflict when the job is not queued (someone else has it).
func (s *Store) StartDiscoveryJob(ctx context.Context, id int64, holder string) (*DiscoveryJob, error) {
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE discovery_jobs SET state = ?, claimed_by = ?, started_at = ?
		WHERE id = ? AND state = ?`), JobRunning, holder, s.timeArg(s.now()), id, JobQueued)
	if err != nil {
		return nil, fmt.Errorf("inventory: claim discovery job: %w", err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return nil, fmt.Errorf("%w: discovery job %d is not queued", ErrConflict, id)
	}
	return s.DiscoveryJob(ctx, id)
}

// FinishDiscoveryJob records a running job's outcome: done, with the
// number of certificates found and the per-target errors.
// Errors: ErrConflict when the job is not running.
func (s *Store) FinishDiscoveryJob(ctx context.Context, id int64, found int, errs []JobError) error {
	if errs == nil {
		errs = []JobError{}
	}
	raw, _ := json.Marshal(errs)
	res, err := s.db.ExecContext(ctx, s.q(`UPDATE discovery_jobs SET state = ?, found = ?, errors = ?, finished_at = ?
		WHERE id = ? AND state = ?`), JobDone, found, cleanText(string(raw)), s.timeArg(s.now()), id, JobRunning)
	if err != nil {
		return fmt.Errorf("inventory: finish discovery job %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: discovery job %d is not running", ErrConflict, id)
	}
	return nil
}

// DiscoveryJob returns one job. Errors: ErrNotFound.
func (s *Store) DiscoveryJob(ctx context.Context, id int64) (*DiscoveryJob, error) {
	var r jobRow
	err := s.db.GetContext(ctx, &r, s.q(`SELECT `+jobColumns+` FROM discovery_jobs WHERE id = ?`), id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: discovery job %d", ErrNotFound, id)
	}
	if err != nil {
		return nil, fmt.Errorf("inventory: read discovery job %d: %w", id, err)
	}
	j := r.job()
	return &j, nil
}

// DiscoveryJobs lists jobs newest first; before > 0 pages (keyset on id).
func (s *Store) DiscoveryJobs(ctx context.Context, before int64, limit int) ([]DiscoveryJob, error) {
	var w where
	if before > 0 {
		w.add(`id < ?`, before)
	}
	var rows []jobRow
	if err := s.db.SelectContext(ctx, &rows, s.q(`SELECT `+jobColumns+` FROM discovery_jobs`+w.sql()+
		fmt.Sprintf(` ORDER BY id DESC LIMIT %d`, clampLimit(limit))), w.args...); err != nil {
		return nil, fmt.Errorf("inventory: list discovery jobs: %w", err)
	}
	out := make([]DiscoveryJob, len(rows))
	for i := range rows {
		out[i] = rows[i].job()
	}
	return out, nil
}
