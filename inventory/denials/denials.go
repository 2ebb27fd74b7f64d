package denials

import (
	"context"
	"encoding/json"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/mica-pki/mica/inventory"
)

// Defaults of [Options].
const (
	DefaultWindow     = time.Minute
	DefaultMaxSources = 1000
	// MaxKinds bounds the distinct kinds one summary carries; callers use a
	// small fixed vocabulary, so this only guards against a caller bug.
	MaxKinds = 32
	// OtherSource is the source of the bucket that collects the denials of
	// every source past MaxSources in one window.
	OtherSource = "other"
)

// Sink is where summaries go; *inventory.Store satisfies it. It is called
// from the flush loop only, never from Record, and must be safe for
// concurrent use with the rest of the program.
type Sink interface {
	AppendEvent(ctx context.Context, e inventory.Event) (inventory.Event, error)
}

var _ Sink = (*inventory.Store)(nil)

// Options tune a Summariser; zero values take the defaults.
type Options struct {
	Window     time.Duration    // summary window; DefaultWindow
	MaxSources int              // tracked (protocol, source) pairs per window; DefaultMaxSources
	Now        func() time.Time // clock; time.Now
	Log        *slog.Logger     // dropped summaries are logged here; slog.Default()
}

type key struct{ protocol, source string }

type bucket struct {
	count       int64
	kinds       map[string]int64
	first, last time.Time
}

// summary is one bucket of a closed window, waiting to be written.
type summary struct {
	key
	bucket
	start time.Time
}

// Summariser counts denials per protocol, source and window. All methods
// are safe for concurrent use. Record never blocks on I/O; Flush and
// Close write, one event per summary, outside the lock.
type Summariser struct {
	sink   Sink
	window time.Duration
	max    int
	now    func() time.Time
	log    *slog.Logger

	mu      sync.Mutex
	start   time.Time // of the current window
	cur     map[key]*bucket
	tracked int       // buckets in cur other than the "other" ones
	pending []summary // closed windows not yet written
}

// New returns a Summariser writing to sink.
func New(sink Sink, o Options) *Summariser {
	s := &Summariser{sink: sink, window: o.Window, max: o.MaxSources, now: o.Now, log: o.Log, cur: map[key]*bucket{}}
	if s.window <= 0 {
		s.window = DefaultWindow
	}
	if s.max <= 0 {
		s.max = DefaultMaxSources
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	return s
}

// Window is the summary window.
func (s *Summariser) Window() time.Duration { return s.window }

// Record counts one denial of kind (a fixed word chosen by the caller,
// such as "api.bearer"; never anything the client sent) from source (the
// client address) over protocol. It takes a mutex and touches a map:
// it is cheap enough for every refused request.
func (s *Summariser) Record(protocol, source, kind string) {
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rollLocked(now)
	k := key{protocol, source}
	b := s.cur[k]
	if b == nil && source != OtherSource && s.tracked >= s.max {
		k = key{protocol, OtherSource}
		b = s.cur[k]
	}
	if b == nil {
		b = &bucket{kinds: map[string]int64{}, first: now}
		s.cur[k] = b
		if k.source != OtherSource {
			s.tracked++
		}
	}
	if _, ok := b.kinds[kind]; !ok && len(b.kinds) >= MaxKinds {
		kind = "other"
	}
	b.kinds[kind]++
	b.count++
	b.last = now
}

// rollLocked closes the current window when now is past it.
func (s *Summariser) rollLocked(now time.Time) {
	start := now.Truncate(s.window)
	if start.Equal(s.start) {
		return
	}
	s.closeLocked()
	s.start = start
}

// closeLocked moves the current window's buckets to pending. Pending is
// bounded too: past a few windows' worth (the sink has been failing) the
// oldest summaries are logged and dropped.
func (s *Summariser) closeLocked() {
	for k, b := range s.cur {
		s.pending = append(s.pending, summary{key: k, bucket: *b, start: s.start})
	}
	clear(s.cur)
	s.tracked = 0
	if limit := 4 * (s.max + 8); len(s.pending) > limit {
		for _, d := range s.pending[:len(s.pending)-limit] {
			s.log.Error("audit: dropping a denial summary the audit log did not take", "protocol", d.protocol, "source", d.source, "count", d.count, "window_start", d.start)
		}
		s.pending = append([]summary(nil), s.pending[len(s.pending)-limit:]...)
	}
}

// Flush writes the summaries of every window that has ended. It returns
// the number of events written; a summary the sink refuses is logged with
// its counts and kept for the next flush (within the pending bound).
func (s *Summariser) Flush(ctx context.Context) int {
	s.mu.Lock()
	s.rollLocked(s.now())
	return s.writeUnlock(ctx)
}

// Close writes everything, the current window included, as at shutdown.
// Recording may go on afterwards; it starts a new window.
func (s *Summariser) Close(ctx context.Context) int {
	s.mu.Lock()
	s.closeLocked()
	return s.writeUnlock(ctx)
}

// writeUnlock takes pending, releases the lock and writes.
func (s *Summariser) writeUnlock(ctx context.Context) int {
	todo := s.pending
	s.pending = nil
	s.mu.Unlock()
	sort.Slice(todo, func(i, j int) bool {
		if !todo[i].start.Equal(todo[j].start) {
			return todo[i].start.Before(todo[j].start)
		}
		if todo[i].protocol != todo[j].protocol {
			return todo[i].protocol < todo[j].protocol
		}
		return todo[i].source < todo[j].source
	})
	written := 0
	for i, d := range todo {
		if _, err := s.sink.AppendEvent(ctx, s.event(d)); err != nil {
			s.log.Error("audit: cannot write a denial summary; keeping it", "protocol", d.protocol, "source", d.source, "count", d.count, "err", err)
			s.mu.Lock()
			s.pending = append(todo[i:len(todo):len(todo)], s.pending...)
			s.mu.Unlock()
			return written
		}
		written++
	}
	return written
}

// Event details of an auth.denied.summary event.
type Details struct {
	Count         int64            `json:"count"`
	Kinds         map[string]int64 `json:"kinds"`
	FirstSeen     time.Time        `json:"first_seen"`
	LastSeen      time.Time        `json:"last_seen"`
	WindowStart   time.Time        `json:"window_start"`
	WindowSeconds int64            `json:"window_seconds"`
}

func (s *Summariser) event(d summary) inventory.Event {
	details, _ := json.Marshal(Details{Count: d.count, Kinds: d.kinds, FirstSeen: d.first.UTC(), LastSeen: d.last.UTC(),
		WindowStart: d.start.UTC(), WindowSeconds: int64(s.window / time.Second)})
	return inventory.Event{Time: s.now(), Actor: "anonymous", Action: inventory.ActionDeniedSummary, Protocol: d.protocol,
		Source: d.source, Object: "denials:" + d.protocol, Outcome: "denied", Details: details}
}

// Run flushes every window until ctx ends. It does not flush on return:
// the owner calls Close after the listeners have stopped, so the last
// denials are counted, and before the store closes.
func (s *Summariser) Run(ctx context.Context) {
	t := time.NewTicker(s.window)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.Flush(ctx)
		}
	}
}
