package discover

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// JobStore is the part of the inventory a Runner needs.
// *inventory.Store satisfies it.
type JobStore interface {
	Recorder
	ClaimDiscoveryJob(ctx context.Context, holder string) (*inventory.DiscoveryJob, error)
	FinishDiscoveryJob(ctx context.Context, id int64, found int, errs []inventory.JobError) error
}

var _ JobStore = (*inventory.Store)(nil)

// Runner runs stored discovery jobs: a CLI runs the one it queued; each
// `mica serve` replica polls for queued ones (the claim in the store
// makes sure exactly one replica runs each).
type Runner struct {
	Store       JobStore
	Allow       *AllowList
	Holder      string // who claims: hostname/pid
	Timeout     time.Duration
	Concurrency int
	Host        string                   // file locations' host part
	Password    func(path string) string // PKCS#12 passwords
	Log         *slog.Logger
	// Files is where file jobs may read (fence.go); nil or without roots,
	// file jobs are refused.
	Files *Fence
}

// Check vets a job spec against the allow-list without connecting:
// addresses and ranges are checked now, host names when the job runs
// (after they are resolved). It fits web.JobChecker.
func (r *Runner) Check(kind string, spec inventory.JobSpec) error {
	if kind == "files" {
		return r.Files.Check(spec.Paths)
	}
	if kind != "scan" {
		return nil
	}
	for _, t := range spec.Targets {
		host := t
		if h, _, err := net.SplitHostPort(t); err == nil {
			host = h
		}
		if p, err := netip.ParsePrefix(host); err == nil && !r.Allow.AllowsPrefix(p) {
			return fmt.Errorf("target %s: %w (allowed: %s)", t, ErrNotAllowed, r.Allow)
		}
		if ip, err := netip.ParseAddr(host); err == nil && !r.Allow.Allows(ip) {
			return fmt.Errorf("target %s: %w (allowed: %s)", t, ErrNotAllowed, r.Allow)
		}
	}
	return nil
}

// Run executes a claimed (running) job and stores its outcome.
func (r *Runner) Run(ctx context.Context, job *inventory.DiscoveryJob) (*StoreSink, error) {
	var spec inventory.JobSpec
	sink := &StoreSink{Store: r.Store, JobID: job.ID}
	var src Source
	if err := json.Unmarshal(job.Spec, &spec); err != nil {
		sink.Failed(ctx, "spec", fmt.Errorf("bad job spec: %v", err))
	} else if job.Kind == "scan" {
		src = &Scanner{Targets: spec.Targets, Ports: spec.Ports, Allow: r.Allow, Timeout: r.Timeout, Concurrency: r.Concurrency}
	} else {
		// The fence again at run time: roots may have shrunk since the
		// job was queued, and files may have changed.
		fence := r.Files
		if fence == nil {
			fence = &Fence{}
		}
		src = &Files{Paths: spec.Paths, Host: r.Host, Password: r.Password, Fence: fence}
	}
	if src != nil {
		if err := src.Run(ctx, sink); err != nil {
			sink.Failed(ctx, "job", err)
		}
	}
	errs := sink.Errors
	if sink.Dropped > 0 {
		errs = append(errs, inventory.JobError{Target: "…", Error: fmt.Sprintf("%d more failures not kept", sink.Dropped)})
	}
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := r.Store.FinishDiscoveryJob(fctx, job.ID, sink.Certificates, errs); err != nil {
		return sink, err
	}
	return sink, nil
}

// Poll claims and runs queued jobs every interval until ctx ends.
func (r *Runner) Poll(ctx context.Context, every time.Duration) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		for {
			job, err := r.Store.ClaimDiscoveryJob(ctx, r.Holder)
			if err != nil {
				log.Error("discovery: claim job", "err", err)
				break
			}
			if job == nil {
				break
			}
			sink, err := r.Run(ctx, job)
			if err != nil {
				log.Error("discovery: finish job", "job", job.ID, "err", err)
				continue
			}
			log.Info("discovery job done", "job", job.ID, "certificates", sink.Certificates, "external", sink.External, "errors", len(sink.Errors))
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
