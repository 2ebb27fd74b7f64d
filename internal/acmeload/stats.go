package acmeload

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Result is what one Run measured.
type Result struct {
	Clients    int
	Elapsed    time.Duration
	Latencies  []time.Duration // of successful orders, unordered
	Errors     int
	FirstError string
}

// Percentile returns the p-th percentile (0 < p ≤ 100) of ds by the
// nearest-rank method, 0 for none. ds is not modified.
func Percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := int(p/100*float64(len(s)) + 0.999999999)
	rank = max(1, min(rank, len(s)))
	return s[rank-1]
}

// Record is one measured point: one server at one client count. It is
// what `acmeload run` appends to its JSON-lines file and `acmeload
// report` reads.
type Record struct {
	Server      string  `json:"server"`
	Clients     int     `json:"clients"`
	Seconds     float64 `json:"seconds"`
	Orders      int     `json:"orders"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	OrdersPerS  float64 `json:"orders_per_s"`
	P50ms       float64 `json:"p50_ms"`
	P99ms       float64 `json:"p99_ms"`
	CPUms       float64 `json:"cpu_ms"`              // server process user+system CPU over the run
	DBCPUms     float64 `json:"db_cpu_ms,omitempty"` // PostgreSQL backends of the bench database
	LoadAvg     string  `json:"loadavg"`             // /proc/loadavg after the point
	CPUMsPerOrd float64 `json:"cpu_ms_per_order"`
	DBMsPerOrd  float64 `json:"db_cpu_ms_per_order,omitempty"`
}

// NewRecord summarises r; cpu and dbCPU are the CPU times the server (and
// its database) used during the run.
func NewRecord(server string, r Result, cpu, dbCPU time.Duration) Record {
	n := len(r.Latencies)
	rec := Record{
		Server: server, Clients: r.Clients, Seconds: r.Elapsed.Seconds(),
		Orders: n, Errors: r.Errors, FirstError: r.FirstError,
		P50ms: ms(Percentile(r.Latencies, 50)), P99ms: ms(Percentile(r.Latencies, 99)),
		CPUms: ms(cpu), DBCPUms: ms(dbCPU),
	}
	if r.Elapsed > 0 {
		rec.OrdersPerS = float64(n) / r.Elapsed.Seconds()
	}
	if n > 0 {
		rec.CPUMsPerOrd = rec.CPUms / float64(n)
		rec.DBMsPerOrd = rec.DBCPUms / float64(n)
	}
	return rec
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// clockTick is USER_HZ, the unit of /proc/PID/stat's utime and stime: 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// ProcCPU returns the user+system CPU time process pid has used, from
// /proc/PID/stat (proc root "/proc" normally; tests pass a fake).
func ProcCPU(proc string, pid int) (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(proc, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0, err
	}
	return parseStatCPU(b)
}

// parseStatCPU reads fields 14 and 15 (utime, stime) of a stat line. The
// command name (field 2) may hold spaces and parentheses, so fields are
// counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("acmeload: malformed stat line")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state), so utime (14) is f[11] and stime (15) f[12].
	if len(f) < 13 {
		return 0, fmt.Errorf("acmeload: short stat line")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("acmeload: bad utime/stime in stat line")
	}
	return time.Duration(u+s) * clockTick, nil
}

// PostgresCPU returns, per process, the CPU time of the PostgreSQL
// backends serving database db (their title is "postgres: … USER DB
// HOST(PORT) STATE"). Background processes (WAL writer, checkpointer)
// serve every database on the cluster and are not counted.
func PostgresCPU(proc, db string) (map[int]time.Duration, error) {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return nil, err
	}
	out := map[int]time.Duration{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile(filepath.Join(proc, e.Name(), "cmdline"))
		if err != nil || !bytes.HasPrefix(cmd, []byte("postgres: ")) {
			continue
		}
		if !slices.Contains(strings.Fields(strings.ReplaceAll(string(cmd), "\x00", " ")), db) {
			continue
		}
		if cpu, err := ProcCPU(proc, pid); err == nil {
			out[pid] = cpu
		}
	}
	return out, nil
}

// CPUDelta is the CPU the processes in after used since before; a process
// that started in between counts from zero. One that exited in between
// is lost, which is why the server's connection pool should outlive the
// run.
func CPUDelta(before, after map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, a := range after {
		d += a - before[pid]
	}
	return d
}

// PostgresSampler follows the CPU of a database's backends while a run
// goes on. A backend that exits takes its CPU time out of /proc, and a
// pool that closes idle connections (MICA keeps 8 idle on PostgreSQL)
// churns backends under load; sampling every interval keeps all but the
// last interval of each one's time. Backends that start and exit within
// one interval are missed, so the figure is a lower bound.
type PostgresSampler struct {
	proc, db string
	mu       sync.Mutex
	first    map[int]time.Duration // at Start, for backends alive then
	last     map[int]time.Duration // latest reading of every backend seen
	stop     chan struct{}
	done     chan struct{}
}

// StartPostgresSampler takes a first reading and samples every interval
// until Stop.
func StartPostgresSampler(proc, db string, interval time.Duration) *PostgresSampler {
	s := &PostgresSampler{proc: proc, db: db, last: map[int]time.Duration{}, stop: make(chan struct{}), done: make(chan struct{})}
	s.first, _ = PostgresCPU(proc, db)
	maps.Copy(s.last, s.first)
	go func() {
		defer close(s.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				return
			case <-t.C:
				s.sample()
			}
		}
	}()
	return s
}

func (s *PostgresSampler) sample() {
	m, err := PostgresCPU(s.proc, s.db)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.Copy(s.last, m)
}

// Stop takes a last reading and returns the CPU the backends used since
// the sampler started.
func (s *PostgresSampler) Stop() time.Duration {
	close(s.stop)
	<-s.done
	s.sample()
	s.mu.Lock()
	defer s.mu.Unlock()
	return CPUDelta(s.first, s.last)
}
