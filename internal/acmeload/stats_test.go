package acmeload

import (
	"encoding/xml"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // reversed: Percentile must sort
	}
	for _, tc := range []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100", ms(hundred...), 100, 100 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tc.in...)
			if got := Percentile(tc.in, tc.p); got != tc.want {
				t.Errorf("Percentile(%v) = %v, want %v", tc.p, got, tc.want)
			}
			for i := range in {
				if in[i] != tc.in[i] {
					t.Fatal("Percentile reordered its input")
				}
			}
		})
	}
}

func TestNewRecord(t *testing.T) {
	r := Result{Clients: 4, Elapsed: 2 * time.Second, Errors: 1, FirstError: "boom",
		Latencies: []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 30 * time.Millisecond, 40 * time.Millisecond}}
	rec := NewRecord("x", r, 80*time.Millisecond, 20*time.Millisecond)
	if rec.Orders != 4 || rec.OrdersPerS != 2 || rec.CPUMsPerOrd != 20 || rec.DBMsPerOrd != 5 || rec.P50ms != 20 || rec.P99ms != 40 || rec.Errors != 1 {
		t.Errorf("NewRecord = %+v", rec)
	}
}

// fakeProc writes /proc/PID/stat and cmdline files under a temp root.
func fakeProc(t *testing.T, procs map[string][2]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, f := range procs {
		d := filepath.Join(root, pid)
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "cmdline"), []byte(f[0]), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "stat"), []byte(f[1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// stat builds a stat line whose utime and stime are u and s ticks.
func stat(pid, comm string, u, s int) string {
	return pid + " (" + comm + ") S 1 2 3 0 -1 4194304 100 0 0 0 " + itoa(u) + " " + itoa(s) + " 0 0 20 0 1 0 5 0 0\n"
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestProcCPU(t *testing.T) {
	// A command name with spaces and a ')' must not shift the fields.
	root := fakeProc(t, map[string][2]string{"42": {"mica\x00serve\x00", stat("42", "mi) ca x", 250, 50)}})
	got, err := ProcCPU(root, 42)
	if err != nil || got != 3*time.Second {
		t.Errorf("ProcCPU = %v, %v; want 3s", got, err)
	}
	if _, err := ProcCPU(root, 43); err == nil {
		t.Error("ProcCPU of a missing pid did not fail")
	}
}

func TestPostgresCPU(t *testing.T) {
	root := fakeProc(t, map[string][2]string{
		"10": {"postgres: 15/main: postgres mica_bench_ab 127.0.0.1(5000) idle\x00\x00", stat("10", "postgres", 10, 5)},
		"11": {"postgres: 15/main: postgres mica_bench_ab 127.0.0.1(5001) idle in transaction", stat("11", "postgres", 1, 1)},
		"12": {"postgres: 15/main: postgres test 127.0.0.1(5002) idle", stat("12", "postgres", 900, 900)},
		"13": {"postgres: 15/main: walwriter ", stat("13", "postgres", 900, 900)},
		"14": {"mica_bench_ab", stat("14", "sh", 900, 900)},
	})
	before, err := PostgresCPU(root, "mica_bench_ab")
	if err != nil {
		t.Fatal(err)
	}
	if len(before) != 2 || before[10] != 150*time.Millisecond || before[11] != 20*time.Millisecond {
		t.Errorf("PostgresCPU = %v, want only pids 10 and 11", before)
	}
	after := map[int]time.Duration{10: 200 * time.Millisecond, 11: 20 * time.Millisecond, 99: 30 * time.Millisecond}
	if d := CPUDelta(before, after); d != 80*time.Millisecond {
		t.Errorf("CPUDelta = %v, want 80ms (50 more on 10, 30 from the new 99)", d)
	}
}

func TestChart(t *testing.T) {
	svg := Chart("Orders <per> second", "orders/s", []Series{
		{Name: "MICA & SQLite", Points: []Point{{64, 40}, {1, 30}, {4, 35}, {16, 38}}},
		{Name: "step-ca", Points: []Point{{1, 43}, {4, 74.5}, {16, 109}, {64, 112}}},
	})
	// Well-formed XML (names are escaped).
	dec := xml.NewDecoder(strings.NewReader(string(svg)))
	polylines, circles := 0, 0
	var lastPoints string
	for {
		tok, err := dec.Token()
		if err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("chart is not well-formed XML: %v\n%s", err, svg)
			}
			break
		}
		if se, ok := tok.(xml.StartElement); ok {
			switch se.Name.Local {
			case "polyline":
				polylines++
				for _, a := range se.Attr {
					if a.Name.Local == "points" && polylines == 1 {
						lastPoints = a.Value
					}
				}
			case "circle":
				circles++
			}
		}
	}
	if polylines != 2 || circles != 8 {
		t.Errorf("chart has %d lines and %d points, want 2 and 8", polylines, circles)
	}
	// The points of a line go left to right (sorted by clients) even
	// when measured out of order.
	pts := strings.Fields(lastPoints)
	prev := -1.0
	for _, p := range pts {
		var x, y float64
		if _, err := fmt.Sscanf(p, "%f,%f", &x, &y); err != nil {
			t.Fatal(err)
		}
		if x <= prev {
			t.Errorf("polyline x not increasing: %s", lastPoints)
		}
		prev = x
	}
	for _, want := range []string{"MICA &amp; SQLite", "step-ca", "Orders &lt;per&gt; second", ">64<", ">150<"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("chart lacks %q", want)
		}
	}
}

func TestNiceStep(t *testing.T) {
	for in, want := range map[float64]float64{0: 1, 0.3: 0.5, 7: 10, 22.4: 50, 19: 20, 100: 100} {
		if got := niceStep(in); got != want {
			t.Errorf("niceStep(%v) = %v, want %v", in, got, want)
		}
	}
}

func TestTableAndSplice(t *testing.T) {
	recs, err := ReadRecords(strings.NewReader(`
{"server":"mica-sqlite","clients":16,"orders_per_s":30,"p50_ms":500,"p99_ms":900,"cpu_ms_per_order":34}
{"server":"mica-postgres","clients":16,"orders_per_s":60,"p50_ms":250,"p99_ms":450,"cpu_ms_per_order":12,"db_cpu_ms":100,"db_cpu_ms_per_order":8}
{"server":"step-ca","clients":16,"orders_per_s":100,"p50_ms":150,"p99_ms":300,"cpu_ms_per_order":10}
`))
	if err != nil {
		t.Fatal(err)
	}
	tab := Table(recs, "step-ca")
	for _, want := range []string{
		"| mica-sqlite | 16 | 30.0 | 500 | 900 | 34.0 | – | 0 |",
		"| mica-postgres | 16 | 60.0 | 250 | 450 | 12.0 | 8.0 | 0 |",
		"| mica-sqlite | 16 | 0.30 | 3.40 | 3.00 |",
		"| mica-postgres | 16 | 0.60 | 2.00 | 1.50 |", // CPU ratio counts the PostgreSQL backends
	} {
		if !strings.Contains(tab, want) {
			t.Errorf("table lacks %q:\n%s", want, tab)
		}
	}
	if strings.Contains(tab, "| step-ca | 16 | 1.00") {
		t.Error("the baseline is listed against itself")
	}

	if only := Table(recs[2:], "step-ca"); strings.Contains(only, "Ratios") {
		t.Errorf("a table of the baseline alone has a ratio section:\n%s", only)
	}

	doc := "# Performance\n\nprose before\n"
	once := Splice(doc, "TABLE 1\n")
	if !strings.HasPrefix(once, doc) || !strings.Contains(once, Begin+"\nTABLE 1\n"+End) {
		t.Fatalf("first Splice:\n%s", once)
	}
	twice := Splice(once+"prose after\n", "TABLE 2\n")
	if strings.Contains(twice, "TABLE 1") || !strings.Contains(twice, "TABLE 2") ||
		!strings.HasPrefix(twice, doc) || !strings.HasSuffix(twice, End+"\nprose after\n") {
		t.Errorf("second Splice did not replace only the generated part:\n%s", twice)
	}
}

// TestPostgresSampler keeps the CPU of a backend that exits before the
// run ends (the pool closed its connection), which a before/after reading
// alone would lose.
func TestPostgresSampler(t *testing.T) {
	const title = "postgres: 15/main: postgres mica_bench_cd 127.0.0.1(5000) idle"
	root := fakeProc(t, map[string][2]string{"10": {title, stat("10", "postgres", 10, 0)}})
	s := StartPostgresSampler(root, "mica_bench_cd", 5*time.Millisecond)
	write := func(pid string, ticks int) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(root, pid), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "cmdline"), []byte(title), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, pid, "stat"), []byte(stat(pid, "postgres", ticks, 0)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("10", 30) // 20 more ticks, then the backend exits
	write("20", 5)  // a new backend
	time.Sleep(100 * time.Millisecond)
	if err := os.RemoveAll(filepath.Join(root, "10")); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Stop(), 250*time.Millisecond; got != want {
		t.Errorf("sampled backend CPU = %v, want %v", got, want)
	}
}
