package main

import (
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestServeMetricsInventory: a real 'mica dev' exports the inventory
// series on /metrics: a certificate issued from the CLI shows in the state
// gauge, the issuance counter and the issuer's earliest expiry, and a CRL
// generated from the CLI in the freshness gauge; the pre-signed OCSP
// response in the OCSP freshness gauges and the issuing key's signatures
// in the key usage counter.
func TestServeMetricsInventory(t *testing.T) {
	t.Parallel()
	requireTool(t, "openssl")
	dir := filepath.Join(t.TempDir(), "dev")
	c := &tca{t: t, dir: dir}
	// Initialise, issue and sign a CRL before the server's first scrape
	// refresh, so the 15-second cache already holds them.
	d := startDev(t, dir)
	leaf := filepath.Join(t.TempDir(), "leaf.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "m.test"}), "--profile", "server", "--out", leaf)...)
	c.must(c.data("crl", "generate")...)

	plain := reHTTP.FindString(d.stdout)
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Get(plain + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	value := func(series string) (float64, bool) {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(body)
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(string(m[1]), 64)
		return v, err == nil
	}
	if v, ok := value(`mica_inventory_metrics_up`); v != 1 || !ok {
		t.Errorf("mica_inventory_metrics_up = %v, %v", v, ok)
	}
	if v, _ := value(`mica_certificates{state="issued"}`); v < 1 {
		t.Errorf(`mica_certificates{state="issued"} = %v, want >= 1`, v)
	}
	if v, _ := value(`mica_certificates_issued_total{protocol="cli"}`); v < 1 {
		t.Errorf(`mica_certificates_issued_total{protocol="cli"} = %v, want >= 1`, v)
	}
	now := float64(time.Now().Unix())
	exp := regexp.MustCompile(`(?m)^mica_issuer_earliest_expiry_timestamp_seconds\{issuer="[^"]+"\} (\S+)$`).FindSubmatch(body)
	if exp == nil {
		t.Errorf("no mica_issuer_earliest_expiry_timestamp_seconds series:\n%s", body)
	} else if v, _ := strconv.ParseFloat(string(exp[1]), 64); v <= now {
		t.Errorf("earliest expiry %v is not in the future", v)
	}
	fresh := regexp.MustCompile(`(?m)^mica_crl_next_update_seconds\{issuer="[^"]+"\} (\S+)$`).FindSubmatch(body)
	if fresh == nil {
		t.Errorf("no mica_crl_next_update_seconds series:\n%s", body)
	} else if v, _ := strconv.ParseFloat(string(fresh[1]), 64); v <= 0 {
		t.Errorf("CRL freshness %v, want a nextUpdate in the future", v)
	}
	// The CLI's issuance pre-signed an OCSP response and its engine
	// flushed the issuing key's signatures (certificate, OCSP, CRL) into
	// the lifetime counter and the current hour's bucket.
	ocspNext := regexp.MustCompile(`(?m)^mica_ocsp_next_update_timestamp_seconds\{issuer="[^"]+"\} (\S+)$`).FindSubmatch(body)
	if ocspNext == nil {
		t.Errorf("no mica_ocsp_next_update_timestamp_seconds series:\n%s", body)
	} else if v, _ := strconv.ParseFloat(string(ocspNext[1]), 64); v <= now {
		t.Errorf("OCSP nextUpdate %v is not in the future", v)
	}
	if regexp.MustCompile(`(?m)^mica_ocsp_oldest_response_age_seconds\{issuer="[^"]+"\} \S+$`).Find(body) == nil {
		t.Errorf("no mica_ocsp_oldest_response_age_seconds series:\n%s", body)
	}
	sigs := regexp.MustCompile(`(?m)^mica_key_signatures_total\{class="issuing",key="[^"]+"\} (\S+)$`).FindSubmatch(body)
	if sigs == nil {
		t.Errorf("no mica_key_signatures_total series for the issuing key:\n%s", body)
	} else if v, _ := strconv.ParseFloat(string(sigs[1]), 64); v < 3 {
		t.Errorf("issuing key signatures = %v, want >= 3 (certificate, OCSP response, CRL)", v)
	}
	if err := d.stop(t); err != nil {
		t.Errorf("mica dev stop: %v", err)
	}
}
