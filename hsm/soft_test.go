package hsm_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"go.step.sm/crypto/pemutil"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/internal/testtool"
)

// openSoft opens a softkms backend on a fresh directory, closed at cleanup.
func openSoft(t testing.TB) (hsm.Backend, string, hsm.Secret) {
	t.Helper()
	uri, pass := hsmtest.SoftKMS(t)
	b, err := hsm.Open(context.Background(), hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatalf("Open(%s): %v", uri, err)
	}
	t.Cleanup(func() { b.Close() })
	return b, uri, pass
}

func softDir(t testing.TB, uri string) string {
	t.Helper()
	d, ok := strings.CutPrefix(uri, "softkms:dir=")
	if !ok {
		t.Fatalf("unexpected softkms URI %s", uri)
	}
	return d
}

func TestSoftKeyTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, pass := openSoft(t)
	dir := softDir(t, uri)
	for _, kt := range hsm.KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			t.Parallel()
			name := "key-" + strings.ToLower(string(kt))
			keyURI, err := b.CreateKey(ctx, name, kt)
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			if keyURI != "softkms:name="+name {
				t.Fatalf("key URI %q", keyURI)
			}
			path := filepath.Join(dir, name+".key")
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %v, want 0600", fi.Mode().Perm())
			}
			di, _ := os.Stat(dir)
			if di.Mode().Perm() != 0o700 {
				t.Errorf("dir mode %v, want 0700", di.Mode().Perm())
			}
			data, _ := os.ReadFile(path)
			if !strings.HasPrefix(string(data), "-----BEGIN ENCRYPTED PRIVATE KEY-----\n") ||
				strings.Contains(string(data), "BEGIN PRIVATE KEY") || strings.Contains(string(data), "BEGIN EC PRIVATE KEY") ||
				strings.Contains(string(data), "BEGIN RSA PRIVATE KEY") {
				t.Fatalf("key file is not an encrypted PKCS#8 PEM:\n%s", data)
			}

			s, err := b.Signer(ctx, keyURI)
			if err != nil {
				t.Fatalf("Signer: %v", err)
			}
			signVerify(t, s)
			if got, _ := hsm.KeyTypeOf(s.Public()); got != kt {
				t.Errorf("key type %q, want %q", got, kt)
			}
			switch s.(type) {
			case *ecdsa.PrivateKey, *rsa.PrivateKey, ed25519.PrivateKey:
				t.Fatalf("Signer exposes the private key as %T", s)
			}
			pub, err := b.PublicKey(ctx, keyURI)
			if err != nil || !reflect.DeepEqual(pub, s.Public()) {
				t.Fatalf("PublicKey = %v, %v; want the signer's key", pub, err)
			}
			p, err := b.Protection(ctx, keyURI)
			if err != nil || p != (hsm.Protection{Backend: "softkms", Encrypted: true}) {
				t.Fatalf("Protection = %+v, %v", p, err)
			}

			// The file decrypts with pemutil and the passphrase, and with
			// nothing else: it is a standard PBES2 file, not our format.
			k, err := pemutil.ParseKey(data, pemutil.WithPassword(pass.Bytes()))
			if err != nil {
				t.Fatalf("pemutil.ParseKey: %v", err)
			}
			if !reflect.DeepEqual(k.(crypto.Signer).Public(), s.Public()) {
				t.Fatal("file holds a different key")
			}
			blk, _ := pem.Decode(data)
			if _, err := x509.ParsePKCS8PrivateKey(blk.Bytes); err == nil {
				t.Fatal("file body parses as a clear PKCS#8 key")
			}
		})
	}
}

// TestSoftReopenDecrypts checks the on-disk path: a second backend has an
// empty cache and must decrypt the file to sign.
func TestSoftReopenDecrypts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, pass := openSoft(t)
	keyURI, err := b.CreateKey(ctx, "issuing", hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	s1, _ := b.Signer(ctx, keyURI)
	b2, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	s2, err := b2.Signer(ctx, keyURI)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(s1.Public(), s2.Public()) {
		t.Fatal("reopened key differs")
	}
	signVerify(t, s2)
}

func TestSoftOpenSSLReadsKeyFile(t *testing.T) {
	t.Parallel()
	testtool.Need(t, "openssl")
	ctx := context.Background()
	b, uri, pass := openSoft(t)
	keyURI, err := b.CreateKey(ctx, "interop", hsm.ECP384)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := b.PublicKey(ctx, keyURI)
	passFile := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(passFile, pass.Bytes(), 0o600)
	out, err := exec.Command("openssl", "pkey", "-in", filepath.Join(softDir(t, uri), "interop.key"),
		"-passin", "file:"+passFile, "-pubout").CombinedOutput()
	if err != nil {
		t.Fatalf("openssl pkey: %v\n%s", err, out)
	}
	blk, _ := pem.Decode(out)
	got, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil || !reflect.DeepEqual(got, pub) {
		t.Fatalf("openssl sees a different public key (%v)", err)
	}
}

func TestSoftWrongPassphrase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, pass := openSoft(t)
	keyURI, err := b.CreateKey(ctx, "root", hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	const wrong = "not-the-passphrase-42"
	b2, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: hsm.NewSecret([]byte(wrong))})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	_, errSigner := b2.Signer(ctx, keyURI)
	_, errKeys := b2.Keys(ctx)
	for _, err := range []error{errSigner, errKeys} {
		if !errors.Is(err, hsm.ErrWrongPIN) {
			t.Fatalf("want ErrWrongPIN, got %v", err)
		}
		if strings.Contains(err.Error(), wrong) || strings.Contains(err.Error(), string(pass.Bytes())) {
			t.Fatalf("error reveals a passphrase: %v", err)
		}
	}
}

func TestSoftDuplicate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, _ := openSoft(t)
	if _, err := b.CreateKey(ctx, "issuing", hsm.ECP256); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(softDir(t, uri), "issuing.key")
	before, _ := os.ReadFile(path)
	for _, kt := range []hsm.KeyType{hsm.ECP256, hsm.Ed25519} {
		if _, err := b.CreateKey(ctx, "issuing", kt); !errors.Is(err, hsm.ErrExists) {
			t.Fatalf("second CreateKey(%s): want ErrExists, got %v", kt, err)
		}
	}
	// A file that appeared behind the backend's back is not overwritten.
	os.WriteFile(filepath.Join(softDir(t, uri), "other.key"), []byte("x"), 0o600)
	if _, err := b.CreateKey(ctx, "other", hsm.ECP256); !errors.Is(err, hsm.ErrExists) {
		t.Fatalf("CreateKey over foreign file: want ErrExists, got %v", err)
	}
	after, _ := os.ReadFile(path)
	if string(before) != string(after) {
		t.Fatal("existing key file changed")
	}
}

func TestSoftBadNames(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, _ := openSoft(t)
	parent := filepath.Dir(softDir(t, uri))
	for _, name := range []string{"", "..", "../escape", "a/b", `a\b`, ".hidden", "a b", "-x", "a..b", "ключ", strings.Repeat("k", 65)} {
		_, err := b.CreateKey(ctx, name, hsm.ECP256)
		if err == nil || errors.Is(err, hsm.ErrExists) {
			t.Errorf("CreateKey(%q): want a name error, got %v", name, err)
		}
	}
	for _, u := range []string{"softkms:name=../escape", "softkms:name=a%2Fb", "softkms:name=..", "softkms:path=relative.key",
		"softkms:name=a;path=/tmp/a.key", "softkms:", "softkms:label=x", "pkcs11:object=x", "softkms:name=x;dir=/elsewhere"} {
		if _, err := b.Signer(ctx, u); err == nil || errors.Is(err, hsm.ErrNotFound) {
			t.Errorf("Signer(%q): want a URI error, got %v", u, err)
		}
	}
	if m, _ := filepath.Glob(filepath.Join(parent, "*.key")); len(m) != 0 {
		t.Fatalf("a key escaped the directory: %v", m)
	}
}

func TestSoftNotFound(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _, _ := openSoft(t)
	for _, u := range []string{"softkms:name=nope", "softkms:path=" + filepath.Join(t.TempDir(), "nope.key")} {
		if _, err := b.Signer(ctx, u); !errors.Is(err, hsm.ErrNotFound) {
			t.Errorf("Signer(%s): want ErrNotFound, got %v", u, err)
		}
		if _, err := b.Protection(ctx, u); !errors.Is(err, hsm.ErrNotFound) {
			t.Errorf("Protection(%s): want ErrNotFound, got %v", u, err)
		}
	}
	keys, err := b.Keys(ctx) // the directory does not even exist yet
	if err != nil || len(keys) != 0 {
		t.Fatalf("Keys on empty backend = %v, %v", keys, err)
	}
}

// TestSoftPathURI: an offline root kept outside the backend directory is
// reachable with softkms:path=.
func TestSoftPathURI(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	media, mediaURI, pass := openSoft(t)
	if _, err := media.CreateKey(ctx, "root", hsm.RSA2048); err != nil {
		t.Fatal(err)
	}
	online, err := hsm.Open(ctx, hsm.Config{URI: hsm.SoftKMSURI(t.TempDir()), Secret: pass})
	if err != nil {
		t.Fatal(err)
	}
	defer online.Close()
	s, err := online.Signer(ctx, "softkms:path="+filepath.Join(softDir(t, mediaURI), "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, s)
}

func TestSoftRelativeDir(t *testing.T) {
	ctx := context.Background()
	wd := t.TempDir()
	t.Chdir(wd)
	b, err := hsm.Open(ctx, hsm.Config{URI: "softkms:dir=keys", Secret: hsm.NewSecret([]byte("pw"))})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.CreateKey(ctx, "k", hsm.Ed25519); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(wd, "keys", "k.key")); err != nil {
		t.Fatal(err)
	}
}

func TestSoftOpenErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	pass := hsm.NewSecret([]byte("pw"))
	tests := []struct {
		name string
		cfg  hsm.Config
	}{
		{"no passphrase", hsm.Config{URI: "softkms:dir=" + t.TempDir()}},
		{"no dir", hsm.Config{URI: "softkms:", Secret: pass}},
		{"empty dir", hsm.Config{URI: "softkms:dir=", Secret: pass}},
		{"unknown attribute", hsm.Config{URI: "softkms:dir=/x;pin-value=1", Secret: pass}},
		{"repeated attribute", hsm.Config{URI: "softkms:dir=/x;dir=/y", Secret: pass}},
		{"dir is a file", hsm.Config{URI: "softkms:dir=" + file, Secret: pass}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := hsm.Open(ctx, tc.cfg); err == nil {
				b.Close()
				t.Fatal("want error")
			}
		})
	}
}

func TestSoftKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, _ := openSoft(t)
	want := map[string]hsm.KeyType{"b-issuing": hsm.ECP384, "a-root": hsm.RSA2048, "c-ocsp": hsm.Ed25519}
	for n, kt := range want {
		if _, err := b.CreateKey(ctx, n, kt); err != nil {
			t.Fatal(err)
		}
	}
	dir := softDir(t, uri)
	os.WriteFile(filepath.Join(dir, "notes.txt"), []byte("not a key"), 0o600)
	os.WriteFile(filepath.Join(dir, ".hidden.key"), []byte("not ours"), 0o600)
	os.Mkdir(filepath.Join(dir, "sub.key"), 0o700)

	// A fresh backend has to decrypt every file to tell its type.
	uriPass := hsm.NewSecret([]byte(hsmtest.Passphrase))
	b2, err := hsm.Open(ctx, hsm.Config{URI: uri, Secret: uriPass})
	if err != nil {
		t.Fatal(err)
	}
	defer b2.Close()
	keys, err := b2.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, k := range keys {
		names = append(names, k.Label)
		if k.Type != want[k.Label] || k.URI != "softkms:name="+k.Label || !k.Protection.Encrypted || k.Created.IsZero() {
			t.Errorf("bad KeyInfo %+v", k)
		}
	}
	if strings.Join(names, ",") != "a-root,b-issuing,c-ocsp" {
		t.Fatalf("Keys listed %v", names)
	}
}

func TestSoftClearTextRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, uri, _ := openSoft(t)
	if _, err := b.CreateKey(ctx, "x", hsm.ECP256); err != nil { // creates the dir
		t.Fatal(err)
	}
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(k)
	os.WriteFile(filepath.Join(softDir(t, uri), "clear.key"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	if _, err := b.Signer(ctx, "softkms:name=clear"); err == nil || !strings.Contains(err.Error(), "clear-text") {
		t.Fatalf("clear-text key: want refusal, got %v", err)
	}
	p, err := b.Protection(ctx, "softkms:name=clear")
	if err != nil || p.Encrypted {
		t.Fatalf("Protection of clear-text key = %+v, %v; want Encrypted=false", p, err)
	}
}

func TestSoftSignerArgs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _, _ := openSoft(t)
	for _, kt := range []hsm.KeyType{hsm.ECP256, hsm.RSA2048, hsm.Ed25519} {
		u, err := b.CreateKey(ctx, "args-"+strings.ToLower(string(kt)), kt)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := b.Signer(ctx, u)
		if _, err := s.Sign(rand.Reader, make([]byte, 32), nil); err == nil {
			t.Errorf("%s: nil opts must be an error, not a panic or a signature", kt)
		}
		if kt != hsm.Ed25519 {
			if _, err := s.Sign(rand.Reader, make([]byte, 20), crypto.SHA256); err == nil {
				t.Errorf("%s: short digest must be refused", kt)
			}
			if _, err := s.Sign(nil, make([]byte, 32), crypto.SHA256); err != nil {
				t.Errorf("%s: nil rand: %v", kt, err)
			}
		}
	}
	if _, err := b.CreateKey(ctx, "p521", hsm.KeyType("EC-P521")); !errors.Is(err, hsm.ErrUnsupported) {
		t.Fatalf("unknown key type: want ErrUnsupported, got %v", err)
	}
}

func TestSoftConcurrentSign(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _, _ := openSoft(t)
	u, err := b.CreateKey(ctx, "hot", hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := b.Signer(ctx, u) // concurrent lookups hit the cache
			if err != nil {
				errs <- err
				return
			}
			for range 20 {
				d, opts := digestFor(s)
				sig, err := s.Sign(rand.Reader, d, opts)
				if err == nil {
					err = verify(s, d, opts, sig)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestSoftClose(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b, _, _ := openSoft(t)
	u, _ := b.CreateKey(ctx, "k", hsm.ECP256)
	s, _ := b.Signer(ctx, u)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	d, opts := digestFor(s)
	if _, err := s.Sign(rand.Reader, d, opts); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("Sign after Close: want ErrClosed, got %v", err)
	}
	if _, err := b.Signer(ctx, u); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("Signer after Close: want ErrClosed, got %v", err)
	}
	if _, err := b.CreateKey(ctx, "k2", hsm.ECP256); !errors.Is(err, hsm.ErrClosed) {
		t.Fatalf("CreateKey after Close: want ErrClosed, got %v", err)
	}
}

func TestSoftContextCancelled(t *testing.T) {
	t.Parallel()
	b, _, _ := openSoft(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := b.CreateKey(ctx, "k", hsm.ECP256); !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
}
