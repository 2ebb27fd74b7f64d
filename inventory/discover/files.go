package discover

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/mica-pki/mica/inventory"
)

// Files is the file source: it reads PEM (any number of CERTIFICATE
// blocks; other blocks such as keys are skipped, never stored), DER and
// PKCS#12 files. Directories are walked; inside them only files with a
// certificate-like extension are read, while files named explicitly are
// always tried.
type Files struct {
	Paths []string
	Host  string // location prefix, "host:/path"; default os.Hostname()
	// Password returns the PKCS#12 password for a file (from a file or
	// the environment, never argv); nil means "" only.
	Password func(path string) string
	MaxSize  int64 // bytes per file; default 1 MiB
	// Fence, when set, limits what is read to regular files under its
	// roots (fence.go): jobs run by the server and the CLI set it; the host
	// agent, reading paths its own operator chose, does not. Either way
	// only regular files are read, checked on the open descriptor.
	Fence *Fence
}

var _ Source = (*Files)(nil)

// certExtensions are read when walking a directory.
var certExtensions = map[string]bool{".pem": true, ".crt": true, ".cer": true, ".der": true, ".p12": true, ".pfx": true, ".cert": true}

// ErrNoCertificate: the file was read but holds no certificate.
var ErrNoCertificate = errors.New("no certificate found")

// Run reads every path; unreadable or malformed files are reported to
// sink.Failed and the run goes on.
func (f *Files) Run(ctx context.Context, sink Sink) error {
	host := f.Host
	if host == "" {
		host, _ = os.Hostname()
	}
	out := &serialSink{sink: sink}
	for _, root := range f.Paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		if f.Fence != nil {
			real, err := f.Fence.Resolve(root)
			if err != nil {
				out.failed(ctx, host+":"+root, err)
				continue
			}
			root = real
		}
		info, err := os.Stat(root)
		if err != nil {
			out.failed(ctx, host+":"+root, err)
			continue
		}
		if !info.IsDir() {
			f.one(ctx, out, host, root)
			continue
		}
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				out.failed(ctx, host+":"+p, err)
				return nil
			}
			if f.Fence != nil && f.Fence.lexical(p) != nil {
				if d.IsDir() {
					return fs.SkipDir // the data directory inside a root
				}
				return nil
			}
			if d.Type().IsRegular() && certExtensions[strings.ToLower(filepath.Ext(p))] {
				f.one(ctx, out, host, p)
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return ctx.Err()
}

func (f *Files) one(ctx context.Context, out *serialSink, host, p string) {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	loc := host + ":" + p
	// Read the link's target, checked again: a link swapped in since the
	// job was vetted must still lead inside the roots.
	var real string
	var err error
	if f.Fence != nil {
		real, err = f.Fence.Resolve(p)
	} else {
		real, err = filepath.EvalSymlinks(p)
	}
	if err != nil {
		out.failed(ctx, loc, err)
		return
	}
	data, err := f.read(real)
	if err != nil {
		out.failed(ctx, loc, err)
		return
	}
	pw := ""
	if f.Password != nil {
		pw = f.Password(p)
	}
	chain, err := ParseCertificates(data, pw)
	if err != nil {
		out.failed(ctx, loc, err)
		return
	}
	out.found(ctx, Found{Kind: inventory.KindFile, Location: loc, Chain: chain})
}

func (f *Files) read(p string) ([]byte, error) {
	limit := f.MaxSize
	if limit <= 0 {
		limit = 1 << 20
	}
	fh, err := openRegular(p)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("file larger than %d bytes", limit)
	}
	return data, nil
}

// ParseCertificates extracts certificates (as DER, in file order) from
// PEM, DER or PKCS#12 data; password is for PKCS#12 only.
func ParseCertificates(data []byte, password string) ([][]byte, error) {
	if bytes.Contains(data, []byte("-----BEGIN")) {
		var chain [][]byte
		rest := data
		for {
			var b *pem.Block
			b, rest = pem.Decode(rest)
			if b == nil {
				break
			}
			if b.Type != "CERTIFICATE" {
				continue
			}
			if _, err := x509.ParseCertificate(b.Bytes); err != nil {
				return nil, fmt.Errorf("PEM certificate does not parse: %v", err)
			}
			chain = append(chain, b.Bytes)
		}
		if len(chain) == 0 {
			return nil, ErrNoCertificate
		}
		return chain, nil
	}
	if certs, err := x509.ParseCertificates(data); err == nil && len(certs) > 0 {
		chain := make([][]byte, len(certs))
		for i, c := range certs {
			chain[i] = c.Raw
		}
		return chain, nil
	}
	_, leaf, cas, err := pkcs12.DecodeChain(data, password)
	if err != nil {
		trust, terr := pkcs12.DecodeTrustStore(data, password)
		if terr != nil || len(trust) == 0 {
			if errors.Is(err, pkcs12.ErrIncorrectPassword) {
				return nil, fmt.Errorf("PKCS#12: wrong password")
			}
			return nil, fmt.Errorf("%w (not PEM, DER or PKCS#12)", ErrNoCertificate)
		}
		chain := make([][]byte, len(trust))
		for i, c := range trust {
			chain[i] = c.Raw
		}
		return chain, nil
	}
	chain := [][]byte{leaf.Raw}
	for _, c := range cas {
		chain = append(chain, c.Raw)
	}
	return chain, nil
}
