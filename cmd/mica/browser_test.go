package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/mica-pki/mica/internal/testtool"
	"github.com/mica-pki/mica/inventory"
)

const chromiumPath = "/usr/bin/chromium"

// TestBrowserUI drives Debian's chromium (headless, through chromedp)
// against a real `mica dev`: log in, filter the certificate table to a
// certificate the test issued, open it, revoke it with a reason, see the
// new state and the audit event; edit its labels; sort the table by
// expiry with a header click; select two certificates and bulk-revoke
// them; as an admin see the users page, schedule a recurring scan and see
// the audit events; and check
// the browser reported no Content-Security-Policy violation or integrity
// failure on any page.
// Screenshots go to $MICA_UI_SCREENSHOTS when set (docs/img).
func TestBrowserUI(t *testing.T) {
	if _, err := os.Stat(chromiumPath); err != nil {
		testtool.Missing(t, "chromium", err)
	}
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dev")
	d := startDev(t, dir)
	base := reHTTPS.FindString(d.stdout)
	c := &tca{t: t, dir: dir}
	work := t.TempDir()
	leaf := filepath.Join(work, "ui.pem")
	c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: "browser-target.test"}), "--profile", "server", "--out", leaf)...)
	serial := inventory.FormatSerialNumber(readCerts(t, leaf)[0].SerialNumber)
	var bulkSerials []string
	for _, cn := range []string{"bulk-a.test", "bulk-b.test"} {
		out := filepath.Join(work, cn+".pem")
		c.must(c.data("cert", "issue", "--csr", makeCSR(t, csrOpts{cn: cn}), "--profile", "server", "--out", out)...)
		bulkSerials = append(bulkSerials, inventory.FormatSerialNumber(readCerts(t, out)[0].SerialNumber))
	}
	pw := writeSecret(t, work, "pw", "browser test password")
	c.must(c.data("user", "create", "ada", "--role", "operator", "--password-file", pw)...)
	c.must(c.data("user", "create", "vic", "--role", "viewer", "--password-file", pw)...)
	c.must(c.data("user", "create", "root", "--role", "admin", "--password-file", pw)...)

	ctx := newBrowser(t)
	var mu sync.Mutex
	var problems []string
	listen := func(ev any) {
		var msg string
		switch ev := ev.(type) {
		case *log.EventEntryAdded:
			msg = ev.Entry.Text
		case *runtime.EventExceptionThrown:
			msg = ev.ExceptionDetails.Text
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.APITypeError {
				for _, a := range ev.Args {
					msg += string(a.Value)
				}
			}
		}
		if msg != "" {
			mu.Lock()
			problems = append(problems, msg)
			mu.Unlock()
		}
	}
	chromedp.ListenTarget(ctx, listen)
	shot := func(name string) chromedp.Action {
		return chromedp.ActionFunc(func(ctx context.Context) error {
			out := os.Getenv("MICA_UI_SCREENSHOTS")
			if out == "" {
				return nil
			}
			var buf []byte
			if err := chromedp.FullScreenshot(&buf, 100).Do(ctx); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(out, name+".png"), buf, 0o644)
		})
	}
	login := func(user string) chromedp.Tasks {
		return chromedp.Tasks{
			chromedp.Navigate(base + "/ui/login"),
			chromedp.WaitVisible(`#name`, chromedp.ByID),
			chromedp.SendKeys(`#name`, user, chromedp.ByID),
			chromedp.SendKeys(`#password`, "browser test password", chromedp.ByID),
			chromedp.Click(`#login`, chromedp.ByID),
			chromedp.WaitVisible(`//h1[text()="Dashboard"]`),
		}
	}
	var state, table, events, certURL string
	err := chromedp.Run(ctx, log.Enable(), runtime.Enable(),
		login("ada"), shot("dashboard"),
		chromedp.Navigate(base+"/ui/certificates"),
		chromedp.WaitVisible(`#q`, chromedp.ByID),
		chromedp.SendKeys(`#q`, "browser-target", chromedp.ByID),
		chromedp.SetValue(`#state`, "issued", chromedp.ByID),
		chromedp.Click(`#filter`, chromedp.ByID),
		chromedp.WaitVisible(`//table[@id="certs"]//a[text()="browser-target.test"]`),
		chromedp.Text(`#certs tbody`, &table, chromedp.ByQuery),
		shot("certificates"),
		chromedp.Click(`//table[@id="certs"]//a[text()="browser-target.test"]`),
		chromedp.WaitVisible(`#revoke`, chromedp.ByID),
		chromedp.Location(&certURL),
		shot("certificate"),
		chromedp.SetValue(`#reason`, "keyCompromise", chromedp.ByID),
		chromedp.Click(`#revoke`, chromedp.ByID),
		chromedp.WaitVisible(`//p[@role="status"][contains(., "revoked")]`),
		chromedp.Text(`#cert-state`, &state, chromedp.ByID),
		chromedp.Text(`#events`, &events, chromedp.ByID),
	)
	if err != nil {
		t.Fatalf("browser: %v\nstderr:\n%s", err, d.stderr)
	}
	// Labels, a header sort and a bulk revocation of two certificates.
	var labels, sortedURL, ariaSort, bulkResult string
	check := func(sr string) chromedp.Action {
		return chromedp.Click(`#certs input[value$="/`+sr+`"]`, chromedp.ByQuery)
	}
	err = chromedp.Run(ctx,
		chromedp.SetValue(`#owner`, "alice", chromedp.ByID),
		chromedp.SetValue(`#team`, "payments", chromedp.ByID),
		chromedp.SetValue(`#tags`, "pci edge", chromedp.ByID),
		chromedp.Click(`#save-labels`, chromedp.ByID),
		chromedp.WaitVisible(`//p[@role="status"][contains(., "Labels saved")]`),
		chromedp.Text(`#cert-labels`, &labels, chromedp.ByID),
		chromedp.Navigate(base+"/ui/certificates?q=bulk-"),
		chromedp.WaitVisible(`#certs`, chromedp.ByID),
		chromedp.Click(`//table[@id="certs"]//th/a[starts-with(., "Expires")]`),
		chromedp.WaitVisible(`//th[@aria-sort="ascending"]/a[starts-with(., "Expires")]`),
		chromedp.Location(&sortedURL),
		chromedp.AttributeValue(`//table[@id="certs"]//th[a[starts-with(., "Expires")]]`, "aria-sort", &ariaSort, nil),
		check(bulkSerials[0]), check(bulkSerials[1]),
		chromedp.SetValue(`#bulk-action`, "revoke", chromedp.ByID),
		chromedp.SetValue(`#bulk-reason`, "cessationOfOperation", chromedp.ByID),
		shot("certificates-sorted"),
		chromedp.Click(`#bulk-submit`, chromedp.ByID),
		chromedp.WaitVisible(`//p[contains(., "Revoked 2 of 2")]`),
		chromedp.Text(`main`, &bulkResult, chromedp.ByQuery),
		shot("bulk-revoke"),
	)
	if err != nil {
		t.Fatalf("browser (labels, sort, bulk): %v\nstderr:\n%s", err, d.stderr)
	}
	if !strings.Contains(labels, "alice / payments") {
		t.Errorf("labels after save = %q", labels)
	}
	if !strings.Contains(sortedURL, "sort=expiry") || !strings.Contains(sortedURL, "q=bulk-") || ariaSort != "ascending" {
		t.Errorf("after the header click: URL %s, aria-sort %q", sortedURL, ariaSort)
	}
	for _, sr := range bulkSerials {
		if !strings.Contains(bulkResult, sr) {
			t.Errorf("bulk result does not list %s:\n%s", sr, bulkResult)
		}
	}
	if strings.Count(strings.TrimSpace(table), "browser-target.test") != 1 {
		t.Errorf("filtered table = %q, want only browser-target.test", table)
	}
	if !strings.HasSuffix(certURL, "/"+serial) {
		t.Errorf("opened %s, want the certificate with serial %s", certURL, serial)
	}
	if !strings.Contains(state, "revoked (keyCompromise)") {
		t.Errorf("state after revoke = %q", state)
	}
	if !strings.Contains(events, "cert.revoke") || !strings.Contains(events, "user:ada") {
		t.Errorf("event timeline = %q, want cert.revoke by user:ada", events)
	}
	// A viewer sees the certificate but no revoke form.
	var hasRevoke bool
	vctx := newBrowser(t) // a second browser with its own profile and cookies: vic
	chromedp.ListenTarget(vctx, listen)
	if err := chromedp.Run(vctx, login("vic"),
		chromedp.Navigate(certURL),
		chromedp.WaitVisible(`#cert-state`, chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("revoke") !== null`, &hasRevoke),
	); err != nil {
		t.Fatal(err)
	}
	if hasRevoke {
		t.Error("viewer is offered the revoke form")
	}
	// Forging the form does not help: the viewer's own session, posting
	// from the UI's origin, is refused (403) and audited (checked below).
	var cookies []*network.Cookie
	if err := chromedp.Run(vctx, chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		cookies, err = network.GetCookies().WithURLs([]string{base + "/ui/"}).Do(ctx)
		return err
	})); err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	for _, cert := range readCerts(t, filepath.Join(dir, rootPEM)) {
		pool.AddCert(cert)
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	req, _ := http.NewRequest("POST", certURL+"/revoke", strings.NewReader("reason=keyCompromise"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", base)
	for _, ck := range cookies {
		if ck.Name == "mica_session" {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
	}
	if len(req.Cookies()) != 1 {
		t.Fatalf("no session cookie in the viewer's browser: %d cookies", len(cookies))
	}
	if res, err := hc.Do(req); err != nil {
		t.Fatal(err)
	} else if res.Body.Close(); res.StatusCode != http.StatusForbidden {
		t.Errorf("viewer's revoke POST = %d, want 403", res.StatusCode)
	}
	// The admin manages users and reads the audit trail of all of it.
	var audit, denied, deniedURL string
	if err := chromedp.Run(vctx,
		chromedp.Click(`//form[@action="/ui/logout"]/button`),
		chromedp.WaitVisible(`#login`, chromedp.ByID),
		login("root"),
		chromedp.Navigate(base+"/ui/users"),
		chromedp.WaitVisible(`#add-user`, chromedp.ByID),
		shot("users"),
		chromedp.Navigate(base+"/ui/discovery"),
		chromedp.WaitVisible(`#schedule-form`, chromedp.ByID),
		chromedp.SendKeys(`#s-targets`, "127.0.0.1", chromedp.ByID),
		chromedp.SetValue(`#s-interval`, "6h", chromedp.ByID),
		chromedp.Submit(`#s-targets`, chromedp.ByID),
		chromedp.WaitVisible(`//p[@role="status"][contains(., "Schedule created")]`),
		chromedp.WaitVisible(`//table[@id="schedules"]//td[text()="6h"]`),
		shot("discovery-schedules"),
		chromedp.Navigate(base+"/ui/audit?action=cert."),
		chromedp.WaitVisible(`//td[text()="cert.bulk"]`),
		chromedp.Text(`main`, &audit, chromedp.ByQuery),
		// The audit filter form: the viewer's refused revoke.
		chromedp.Navigate(base+"/ui/audit"),
		chromedp.WaitVisible(`#audit-filter`, chromedp.ByID),
		chromedp.SendKeys(`#f-action`, "ui.access", chromedp.ByID),
		chromedp.SendKeys(`#f-actor`, "user:vic", chromedp.ByID),
		chromedp.Click(`#audit-apply`, chromedp.ByID),
		chromedp.WaitVisible(`//table[@id="audit"]//td[text()="denied"]`),
		chromedp.Location(&deniedURL),
		chromedp.Text(`#audit tbody`, &denied, chromedp.ByQuery),
		shot("audit"),
		chromedp.Navigate(base+"/ui/issuers"),
		chromedp.WaitVisible(`#issuers`, chromedp.ByID),
		shot("issuers"),
	); err != nil {
		t.Fatalf("browser (admin): %v", err)
	}
	if !strings.Contains(deniedURL, "actor=user%3Avic") || !strings.Contains(denied, "/revoke") || strings.Count(denied, "ui.access") != 1 {
		t.Errorf("audit filter %s shows %q, want the viewer's one denied revoke", deniedURL, denied)
	}
	if strings.Count(audit, "cert.revoke") < 3 || !strings.Contains(audit, "cert.label") || !strings.Contains(audit, `"count":2`) {
		t.Errorf("audit log lacks the revocations, label change or bulk event:\n%s", audit)
	}
	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		if strings.Contains(p, "Content Security Policy") || strings.Contains(p, "integrity") || strings.Contains(p, "Refused") {
			t.Errorf("browser reported: %s", p)
		}
	}
}

// newBrowser starts headless chromium with the flags INTEROP.md lists and
// a fresh profile, closed when the test ends.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath), chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true), chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true), chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("ignore-certificate-errors", true), // dev CA is not in chromium's store
		chromedp.WindowSize(1280, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}
