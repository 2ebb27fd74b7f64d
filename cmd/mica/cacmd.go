package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/mica-pki/mica/ca"
	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/inventory"
)

// activeChain orders the issuers as ca.New does: the active issuing CA
// (active, not a root, with an online key, latest notBefore) followed by
// its parents up to the root. The rest (retired, other hierarchies) follow
// in others. It needs no key, so `ca show` and `ca root` work without a PIN.
func activeChain(issuers []inventory.Issuer) (chain, others []inventory.Issuer) {
	byID := map[string]inventory.Issuer{}
	var active *inventory.Issuer
	for i := range issuers {
		is := issuers[i]
		byID[is.ID] = is
		if is.IsRoot || is.Status != ca.StatusActive || is.KeyURI == "" {
			continue
		}
		if active == nil || is.NotBefore.After(active.NotBefore) {
			active = &issuers[i]
		}
	}
	seen := map[string]bool{}
	for cur := active; cur != nil && !seen[cur.ID]; {
		chain = append(chain, *cur)
		seen[cur.ID] = true
		p, ok := byID[cur.ParentID]
		if !ok || cur.ParentID == "" {
			break
		}
		cur = &p
	}
	for _, is := range issuers {
		if !seen[is.ID] {
			others = append(others, is)
		}
	}
	return chain, others
}

// issuerView is one CA certificate as `ca show` reports it.
type issuerView struct {
	ID          string          `json:"id"`
	Role        string          `json:"role"` // root, issuing
	Status      string          `json:"status"`
	InChain     bool            `json:"in_active_chain"`
	Subject     string          `json:"subject"`
	NotBefore   time.Time       `json:"not_before"`
	NotAfter    time.Time       `json:"not_after"`
	Fingerprint string          `json:"sha256_fingerprint"`
	KeyType     string          `json:"key_type"`
	KeyURI      string          `json:"key_uri,omitempty"`
	KeyOffline  bool            `json:"key_offline"`
	Protection  *hsm.Protection `json:"protection,omitempty"`
	ProtError   string          `json:"protection_error,omitempty"`
}

func runCAShow(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "ca show", "[flags]")
	asJSON := c.fs.Bool("json", false, "print JSON")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("ca show takes no arguments, got %q", pos)
	}
	cfg, err := c.load()
	if err != nil {
		return err
	}
	log := c.logger(cfg, false)
	st, err := openStore(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	if len(issuers) == 0 {
		return configErrorf("the store has no issuers: run 'mica init'")
	}
	chain, others := activeChain(issuers)

	// Protection is read from the backend (token attributes for PKCS#11),
	// never assumed; without the secret the rest is still worth showing.
	var backends []hsm.Backend
	var backendErr error
	if keys, err := openKeys(ctx, e, cfg); err == nil {
		backends = append(backends, keys)
		defer keys.Close()
	} else {
		backendErr = err
		log.Debug("key backend not opened", "err", err)
	}
	if cfg.Keys.RootBackend != "" && !cfg.CA.OfflineRoot {
		if rk, err := openRootKeys(ctx, e, cfg); err == nil {
			backends = append(backends, rk)
			defer rk.Close()
		}
	}

	var views []issuerView
	for i, list := range [][]inventory.Issuer{chain, others} {
		for _, is := range list {
			v := issuerView{
				ID: is.ID, Role: "issuing", Status: is.Status, InChain: i == 0, Subject: is.Subject,
				NotBefore: is.NotBefore, NotAfter: is.NotAfter, Fingerprint: fingerprint(is.DER),
				KeyType: is.KeyType, KeyURI: is.KeyURI, KeyOffline: is.KeyURI == "",
			}
			if is.IsRoot {
				v.Role = "root"
			}
			if cert, err := x509.ParseCertificate(is.DER); err == nil {
				v.Subject = cert.Subject.String()
			}
			if is.KeyURI != "" {
				v.Protection, v.ProtError = protectionOf(ctx, backends, backendErr, is.KeyURI)
			}
			views = append(views, v)
		}
	}
	if *asJSON {
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(views)
	}
	printIssuers(e.stdout, views)
	return nil
}

func protectionOf(ctx context.Context, backends []hsm.Backend, openErr error, uri string) (*hsm.Protection, string) {
	if len(backends) == 0 {
		_, msg := classify(openErr)
		return nil, "unknown (" + msg + ")"
	}
	var last error
	for _, b := range backends {
		p, err := b.Protection(ctx, uri)
		if err == nil {
			return &p, ""
		}
		last = err
	}
	if errors.Is(last, hsm.ErrNotFound) {
		return nil, "unknown (key not found in the configured backend)"
	}
	return nil, "unknown (" + last.Error() + ")"
}

func printIssuers(w io.Writer, views []issuerView) {
	row := func(k, v string) { fmt.Fprintf(w, "  %-12s %s\n", k+":", v) }
	for i, v := range views {
		if i > 0 {
			fmt.Fprintln(w)
		}
		title := v.Role + " CA " + v.ID
		if v.InChain && v.Role == "issuing" {
			title += " (active)"
		} else if !v.InChain {
			title += " (not in the active chain)"
		}
		fmt.Fprintln(w, title)
		row("Subject", v.Subject)
		row("Status", v.Status)
		row("Valid", fmtTime(v.NotBefore)+" to "+fmtTime(v.NotAfter))
		row("SHA-256", v.Fingerprint)
		row("Key type", v.KeyType)
		switch {
		case v.KeyOffline:
			row("Key", "offline (not usable by this CA)")
		case v.Protection != nil:
			row("Key URI", v.KeyURI)
			row("Protection", v.Protection.String())
		default:
			row("Key URI", v.KeyURI)
			row("Protection", v.ProtError)
		}
	}
}

func runCARoot(ctx context.Context, e *env, args []string) error {
	c := newFlags(e, "ca root", "[flags]")
	if pos, err := c.parse(args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usageErrorf("ca root takes no arguments, got %q", pos)
	}
	st, err := openStoreOnly(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	issuers, err := st.Issuers(ctx)
	if err != nil {
		return withCode(exitUnavailable, err)
	}
	chain, _ := activeChain(issuers)
	if len(chain) == 0 || !chain[len(chain)-1].IsRoot {
		return &cliError{code: exitNotFound, msg: "no root CA found for the active issuing CA: run 'mica init'"}
	}
	_, err = e.stdout.Write(encodeDER(chain[len(chain)-1].DER))
	return err
}
