package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mica-pki/mica/inventory"
	"github.com/mica-pki/mica/inventory/discover"
	"github.com/mica-pki/mica/web"
)

// runAgent: mica agent --server URL --cert F --key F --ca F --paths P,…
// [--interval D | --once]. It finds certificates in the paths (the file
// discovery source) and reports them to MICA over mutual TLS, identified
// by its own MICA-issued client certificate. It never sends keys.
func runAgent(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "agent", "--server URL --cert F --key F --ca F --paths P,… [--interval D | --once]")
	server := c.fs.String("server", "", "MICA HTTPS base `URL`, e.g. https://mica:8443")
	certF := c.fs.String("cert", "", "agent client certificate `FILE` (PEM, issued by MICA)")
	keyF := c.fs.String("key", "", "agent private key `FILE` (PEM)")
	caF := c.fs.String("ca", "", "MICA root certificate `FILE` to verify the server")
	paths := c.fs.String("paths", "", "comma-separated files and directories to search")
	interval := c.fs.Duration("interval", time.Hour, "how often to report")
	once := c.fs.Bool("once", false, "report once and exit")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("agent takes no arguments, got %q", pos)
	}
	if *server == "" || *certF == "" || *keyF == "" || *caF == "" || *paths == "" {
		return usageErrorf("--server, --cert, --key, --ca and --paths are required")
	}
	pair, err := tls.LoadX509KeyPair(*certF, *keyF)
	if err != nil {
		return usageErrorf("agent identity: %v", err)
	}
	rootPEM, err := os.ReadFile(*caF)
	if err != nil {
		return usageErrorf("--ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		return usageErrorf("--ca: no certificate in %s", *caF)
	}
	client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{pair}, RootCAs: roots, MinVersion: tls.VersionTLS12}}}
	url := strings.TrimSuffix(*server, "/") + "/api/v1/agent/report"
	for {
		n, err := agentReportOnce(ctx, client, url, splitList(*paths))
		if err != nil {
			if *once {
				return &cliError{code: exitUnavailable, msg: "agent report failed", err: err}
			}
			fmt.Fprintf(e.stderr, "mica agent: %v\n", err)
		} else {
			fmt.Fprintf(e.stdout, "reported %d certificates\n", n)
		}
		if *once {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(*interval):
		}
	}
}

// agentSink collects what the file source finds into a report.
type agentSink struct{ rep web.AgentReport }

func (a *agentSink) Found(_ context.Context, f discover.Found) error {
	a.rep.Found = append(a.rep.Found, web.AgentFound{Path: f.Location, Chain: f.Chain})
	return nil
}

func (a *agentSink) Failed(_ context.Context, target string, err error) {
	a.rep.Errors = append(a.rep.Errors, inventory.JobError{Target: target, Error: err.Error()})
}

func agentReportOnce(ctx context.Context, client *http.Client, url string, paths []string) (int, error) {
	sink := &agentSink{}
	// The "-:" host prefix is stripped below: the server names the host
	// from the agent's certificate, so a report carries only paths.
	if err := (&discover.Files{Paths: paths, Host: "-"}).Run(ctx, sink); err != nil {
		return 0, err
	}
	for i := range sink.rep.Found {
		sink.rep.Found[i].Path = strings.TrimPrefix(sink.rep.Found[i].Path, "-:")
	}
	for i := range sink.rep.Errors {
		sink.rep.Errors[i].Target = strings.TrimPrefix(sink.rep.Errors[i].Target, "-:")
	}
	body, err := json.Marshal(sink.rep)
	if err != nil {
		return 0, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("server answered %s: %s", res.Status, strings.TrimSpace(string(raw)))
	}
	var out struct {
		Recorded int `json:"recorded"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return 0, fmt.Errorf("server answer: %v", err)
	}
	return out.Recorded, nil
}
