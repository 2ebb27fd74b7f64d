// Command acmeload drives an ACME CA with concurrent full orders and
// writes what it measured; scripts/bench-acme.sh runs it against MICA and
// step-ca. Subcommands:
//
//	acmeload run -server NAME -directory URL -http01 ADDR -dns ADDR -pid PID [-pg-db DB] -out FILE
//	acmeload report -in FILE -baseline step-ca -md docs/performance.md -svg docs/img/bench-acme.svg
//	acmeload freeport                  # a loopback port free on TCP and UDP
//	acmeload pg-create -dsn DSN        # a scratch database; prints its DSN and name
//	acmeload pg-drop -dsn DSN -db NAME
package main

import (
	"context"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/signal"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/mica-pki/mica/internal/acmeload"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: acmeload run|report|freeport|pg-create|pg-drop [flags]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "run":
		err = run(ctx, os.Args[2:])
	case "report":
		err = report(os.Args[2:])
	case "freeport":
		err = freeport()
	case "pg-create":
		err = pgCreate(ctx, os.Args[2:])
	case "pg-drop":
		err = pgDrop(ctx, os.Args[2:])
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "acmeload:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("run", flag.ExitOnError)
	server := fs.String("server", "", "`NAME` of the server in the results")
	dir := fs.String("directory", "", "ACME directory `URL`")
	clientsF := fs.String("clients", "1,4,16,64", "client `COUNTS`, comma-separated")
	dur := fs.Duration("duration", 20*time.Second, "measured time per client count")
	warm := fs.Duration("warmup", 2*time.Second, "unmeasured time before each client count")
	h01 := fs.String("http01", "127.0.0.1:0", "http-01 responder `ADDR`")
	dnsAddr := fs.String("dns", "127.0.0.1:0", "DNS server `ADDR`")
	pid := fs.Int("pid", 0, "server `PID` whose CPU is measured (0: none)")
	pgDB := fs.String("pg-db", "", "PostgreSQL `DATABASE` whose backends' CPU is measured")
	caFile := fs.String("cafile", "", "PEM `FILE` of roots for the CA's TLS certificate (default: not checked)")
	out := fs.String("out", "", "JSON-lines `FILE` results are appended to")
	_ = fs.Parse(args)
	if *server == "" || *dir == "" || *out == "" {
		return errors.New("run: -server, -directory and -out are required")
	}
	var counts []int
	for _, s := range strings.Split(*clientsF, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1 {
			return fmt.Errorf("run: bad client count %q", s)
		}
		counts = append(counts, n)
	}
	var roots *x509.CertPool
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil {
			return err
		}
		roots = x509.NewCertPool()
		if !roots.AppendCertsFromPEM(pem) {
			return fmt.Errorf("run: no certificates in %s", *caFile)
		}
	}
	d, err := acmeload.StartDNS(*dnsAddr)
	if err != nil {
		return fmt.Errorf("run: DNS: %w", err)
	}
	defer d.Close()
	h, err := acmeload.StartHTTP01(*h01)
	if err != nil {
		return fmt.Errorf("run: http-01: %w", err)
	}
	defer h.Close()
	opts := &acmeload.Options{Directory: *dir, RootCAs: roots, HTTP01: h}
	f, err := os.OpenFile(*out, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()

	most := 0
	for _, n := range counts {
		most = max(most, n)
	}
	fmt.Fprintf(os.Stderr, "%s: registering %d accounts\n", *server, most)
	clients, err := acmeload.NewClients(ctx, opts, most)
	if err != nil {
		return err
	}
	for _, n := range counts {
		if *warm > 0 {
			acmeload.Run(ctx, clients[:n], *warm)
		}
		var pg *acmeload.PostgresSampler
		if *pgDB != "" {
			pg = acmeload.StartPostgresSampler("/proc", *pgDB, 100*time.Millisecond)
		}
		cpu0 := serverCPU(*pid)
		res := acmeload.Run(ctx, clients[:n], *dur)
		cpu1 := serverCPU(*pid)
		var dbCPU time.Duration
		if pg != nil {
			dbCPU = pg.Stop()
		}
		rec := acmeload.NewRecord(*server, res, cpu1-cpu0, dbCPU)
		if la, err := os.ReadFile("/proc/loadavg"); err == nil {
			rec.LoadAvg = strings.Join(strings.Fields(string(la))[:3], " ")
		}
		line, _ := json.Marshal(rec)
		if _, err := f.Write(append(line, '\n')); err != nil {
			return err
		}
		fmt.Fprintf(os.Stderr, "%-16s %3d clients: %7.1f orders/s  p50 %5.0f ms  p99 %5.0f ms  cpu %5.1f ms/order  db %5.1f ms/order  failed %d  load %s\n",
			*server, n, rec.OrdersPerS, rec.P50ms, rec.P99ms, rec.CPUMsPerOrd, rec.DBMsPerOrd, rec.Errors, rec.LoadAvg)
		if rec.FirstError != "" {
			fmt.Fprintf(os.Stderr, "  first failure: %s\n", rec.FirstError)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

// serverCPU is the CPU time the server process has used so far.
func serverCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	c, err := acmeload.ProcCPU("/proc", pid)
	if err != nil {
		fmt.Fprintf(os.Stderr, "acmeload: reading CPU of pid %d: %v\n", pid, err)
	}
	return c
}

func report(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	in := fs.String("in", "", "JSON-lines `FILE` from run")
	baseline := fs.String("baseline", "step-ca", "server `NAME` the ratios are taken to")
	md := fs.String("md", "", "Markdown `FILE` whose generated section is replaced")
	svg := fs.String("svg", "", "SVG `FILE` the chart is written to")
	svgRef := fs.String("svg-ref", "img/bench-acme.svg", "how the Markdown file links the chart")
	note := fs.String("note", "", "extra line for the generated section (e.g. settings)")
	_ = fs.Parse(args)
	b, err := os.ReadFile(*in)
	if err != nil {
		return err
	}
	recs, err := acmeload.ReadRecords(strings.NewReader(string(b)))
	if err != nil {
		return err
	}
	table := acmeload.Table(recs, *baseline)
	fmt.Print(table)
	if *svg != "" {
		chart := acmeload.Chart("Full ACME orders per second", "orders/s", acmeload.SeriesOf(recs))
		if err := os.WriteFile(*svg, chart, 0o644); err != nil {
			return err
		}
	}
	if *md == "" {
		return nil
	}
	var g strings.Builder
	fmt.Fprintf(&g, "Measured %s on %s.\n\n", time.Now().UTC().Format("2006-01-02 15:04 MST"), machine())
	if *note != "" {
		fmt.Fprintf(&g, "%s\n\n", *note)
	}
	var loads []string
	for _, r := range recs {
		loads = append(loads, r.LoadAvg)
	}
	fmt.Fprintf(&g, "Load average (1, 5, 15 min) after each point, in order: %s.\n\n", strings.Join(loads, "; "))
	g.WriteString(table)
	fmt.Fprintf(&g, "\n![orders/s against clients](%s)\n\n", *svgRef)
	doc, err := os.ReadFile(*md)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.WriteFile(*md, []byte(acmeload.Splice(string(doc), g.String())), 0o644)
}

// machine describes the host: CPUs, CPU model and the Go toolchain.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(b); m != nil {
			model = strings.TrimSpace(string(m[1]))
		}
	}
	return fmt.Sprintf("%d CPUs (`nproc`), %s, %s %s/%s", runtime.NumCPU(), model, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

func freeport() error {
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		addr := ln.Addr().String()
		pc, err := net.ListenPacket("udp", addr)
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		_, p, _ := net.SplitHostPort(addr)
		fmt.Println(p)
		return nil
	}
	return errors.New("no free port")
}

// pgCreate makes a scratch database next to the one dsn names and prints
// "DSN NAME". Its own database (not a schema) lets run attribute
// PostgreSQL backends to the benchmark by name.
func pgCreate(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pg-create", flag.ExitOnError)
	dsn := fs.String("dsn", "", "PostgreSQL `URL` of an existing database")
	_ = fs.Parse(args)
	u, err := url.Parse(*dsn)
	if err != nil || u.Scheme == "" {
		return errors.New("pg-create: -dsn must be a postgres:// URL")
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "mica_bench_" + hex.EncodeToString(rnd[:])
	db, err := sql.Open("pgx", *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// name is hex digits under our own prefix, safe to format in.
	if _, err := db.ExecContext(ctx, "CREATE DATABASE "+name); err != nil {
		return fmt.Errorf("pg-create: %w", err)
	}
	u.Path = "/" + name
	fmt.Println(u.String(), name)
	return nil
}

func pgDrop(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("pg-drop", flag.ExitOnError)
	dsn := fs.String("dsn", "", "PostgreSQL `URL` of another database on the server")
	name := fs.String("db", "", "scratch database `NAME` from pg-create")
	_ = fs.Parse(args)
	if !regexp.MustCompile(`^mica_bench_[0-9a-f]+$`).MatchString(*name) {
		return fmt.Errorf("pg-drop: %q is not a scratch database of pg-create", *name)
	}
	db, err := sql.Open("pgx", *dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+*name+" WITH (FORCE)")
	return err
}
