package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"github.com/mica-pki/mica/config"
	"github.com/mica-pki/mica/enroll"
	"github.com/mica-pki/mica/inventory"
)

// Default validation ports of `mica dev`: unprivileged (so certbot, lego
// and Caddy need no root to answer challenges), the ones Pebble uses.
const (
	devHTTP01Port    = 5002
	devTLSALPN01Port = 5001
)

// bannerEnd is the banner's last line; tests wait for it.
const bannerEnd = "Stop with Ctrl-C."

// devTokenTTL is how long the EST token printed in the banner lasts.
const devTokenTTL = time.Hour

// printBanner tells the developer where everything is: the root to trust,
// its fingerprint to check, every URL (each one answers a GET), and
// commands for certbot, lego, Caddy, curl EST and the CLI that work as
// printed, with the real ports and a fresh one-time EST token.
func printBanner(ctx context.Context, e *env, r *running, names devNames) {
	w := e.stdout
	g := r.engine
	root := g.ca.Root()
	rootPath := filepath.Join(r.cfg.DataDir, rootPEM)
	https := "https://" + r.httpsAddr.String()
	plain := "http://" + r.httpAddr.String()
	fmt.Fprintf(w, "MICA development CA is running.\n\n")
	fmt.Fprintf(w, "Root certificate: %s\n", rootPath)
	fmt.Fprintf(w, "Root SHA-256 fingerprint: %s\n", fingerprint(root.Raw))
	fmt.Fprintf(w, "Issuing CA: %s (id %s)\n\n", g.ca.Chain()[0].Subject.String(), g.ca.IssuerID())

	line := func(label, url string) { fmt.Fprintf(w, "  %-16s %s\n", label, url) }
	fmt.Fprintf(w, "URLs:\n")
	profiles := make([]string, 0, len(r.cfg.ACME.Profiles))
	for n := range r.cfg.ACME.Profiles {
		profiles = append(profiles, n)
	}
	slices.Sort(profiles)
	for _, n := range profiles {
		line("ACME directory", https+"/acme/"+n+"/directory")
	}
	line("Web UI", https+"/ui/ (user admin)")
	line("Admin API", https+"/api/v1/certificates (bearer token: mica token create --role viewer)")
	estBase := https + "/.well-known/est"
	line("EST", estBase+"/cacerts (label default; simpleenroll, simplereenroll, csrattrs, serverkeygen next to it)")
	line("Health", https+"/healthz  "+plain+"/healthz")
	line("Metrics", https+"/metrics  "+plain+"/metrics")
	if issuers, err := g.store.Issuers(ctx); err == nil {
		for _, is := range issuers {
			line("CA certificate", r.urls.CAIssuersBase+is.ID+".crt")
		}
		for _, is := range issuers {
			line("CRL", r.urls.CRLBase+is.ID+".crl")
		}
	}
	line("OCSP", r.urls.OCSP+" (POST, or GET /ocsp/{base64 request})")

	v := r.cfg.ACME.Validation
	// The recipes use the "default" directory, or the first one when
	// mica.yaml names others.
	dirName := "default"
	if _, ok := r.cfg.ACME.Profiles[dirName]; !ok && len(profiles) > 0 {
		dirName = profiles[0]
	}
	dir := https + "/acme/" + dirName + "/directory"
	fmt.Fprintf(w, "\nACME validation connects to port %d (http-01) and %d (tls-alpn-01); ", v.HTTP01Port, v.TLSALPN01Port)
	if v.DNSResolver != "" {
		fmt.Fprintf(w, "names resolve through %s.\n", v.DNSResolver)
	} else {
		fmt.Fprintf(w, "localhost and names under %s resolve to 127.0.0.1 and ::1 (built-in; add names with --dev-name).\n", names.list())
	}

	fmt.Fprintf(w, "\nGet a certificate; each command works as printed, from any directory:\n\n")
	certbotDir := "./certbot"
	fmt.Fprintf(w, "# certbot, http-01 (its own web server on port %d)\n", v.HTTP01Port)
	fmt.Fprintf(w, "REQUESTS_CA_BUNDLE=%s certbot certonly --standalone --http-01-port %d --http-01-address 127.0.0.1 --server %s --agree-tos --register-unsafely-without-email --non-interactive --config-dir %s --work-dir %s --logs-dir %s -d certbot.test\n\n",
		rootPath, v.HTTP01Port, dir, certbotDir, certbotDir, certbotDir)
	fmt.Fprintf(w, "# lego, http-01\n")
	fmt.Fprintf(w, "LEGO_CA_CERTIFICATES=%s lego --server %s --accept-tos --email dev@lego.test --path ./lego --domains lego.test --http --http.port 127.0.0.1:%d run\n\n",
		rootPath, dir, v.HTTP01Port)
	fmt.Fprintf(w, "# lego, tls-alpn-01\n")
	fmt.Fprintf(w, "LEGO_CA_CERTIFICATES=%s lego --server %s --accept-tos --email dev@lego.test --path ./lego --domains alpn.test --tls --tls.port 127.0.0.1:%d run\n\n",
		rootPath, dir, v.TLSALPN01Port)
	fmt.Fprintf(w, "# Caddy: save the lines below as Caddyfile, then run: caddy run --config Caddyfile\n")
	fmt.Fprintf(w, "{\n\tadmin off\n\tacme_ca %s\n\tacme_ca_root %s\n\thttp_port %d\n\thttps_port %d\n}\ncaddy.test {\n\trespond \"hello from caddy\"\n}\n\n",
		dir, rootPath, v.HTTP01Port, v.TLSALPN01Port)
	fmt.Fprintf(w, "# then ask Caddy, over the certificate it got:\n")
	fmt.Fprintf(w, "curl --cacert %s --resolve caddy.test:%d:127.0.0.1 https://caddy.test:%d/\n\n", rootPath, v.TLSALPN01Port, v.TLSALPN01Port)
	printESTRecipe(ctx, w, r, rootPath, estBase)
	fmt.Fprintf(w, "# mica CLI (mica on the PATH: go install ./cmd/mica)\n")
	fmt.Fprintf(w, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cli.key -subj /CN=cli.test -addext subjectAltName=DNS:cli.test -out cli.csr 2>/dev/null && mica cert issue --data %s --csr cli.csr --profile server --out cli.pem\n\n",
		r.cfg.DataDir)
	fmt.Fprintf(w, "%s\n", bannerEnd)
	if f, ok := w.(interface{ Sync() error }); ok {
		_ = f.Sync()
	}
}

// printESTRecipe prints the curl + openssl enrolment with a fresh
// one-time token, or the command that makes one when that fails.
func printESTRecipe(ctx context.Context, w io.Writer, r *running, rootPath, estBase string) {
	admin := &enroll.TokenAdmin{Store: r.engine.store, Config: estConfig(r.cfg)}
	ev := inventory.Event{Actor: "mica dev", Protocol: "cli", Source: source(), Outcome: "ok"}
	_, cred, err := admin.CreateToken(ctx, "default", nil, devTokenTTL, ev)
	if err != nil {
		r.engine.log.Warn("cannot create the banner's EST token", "err", err)
		cred = "USER:PASSWORD"
		fmt.Fprintf(w, "# EST with curl + openssl; make a token first: mica est token create --data %s --label default\n", r.cfg.DataDir)
	} else {
		fmt.Fprintf(w, "# EST with curl + openssl (the token below works once, for %s)\n", config.FormatDuration(devTokenTTL))
	}
	fmt.Fprintf(w, "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout device.key -subj /CN=device1 -outform DER 2>/dev/null | base64 -w0 > device.b64 && curl -sS --fail --cacert %s -u '%s' -H 'Content-Type: application/pkcs10' --data-binary @device.b64 %s/simpleenroll | base64 -d | openssl pkcs7 -inform DER -print_certs -out device.pem\n\n",
		rootPath, cred, estBase)
}

// list renders the wildcard suffixes for the banner: ".test, .localhost".
func (n devNames) list() string {
	s := ""
	for i, suf := range n.suffixes {
		if i > 0 {
			s += ", "
		}
		s += suf
	}
	for name := range n.exact {
		if name != "localhost" {
			s += ", " + name
		}
	}
	return s
}

// devValidationPorts gives `mica dev` unprivileged validation ports unless
// mica.yaml or a flag chose others.
func devValidationPorts(http01, tlsalpn01 *int) {
	if *http01 == 0 {
		*http01 = devHTTP01Port
	}
	if *tlsalpn01 == 0 {
		*tlsalpn01 = devTLSALPN01Port
	}
}
