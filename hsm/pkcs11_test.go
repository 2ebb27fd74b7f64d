//go:build cgo

package hsm_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/mica-pki/mica/hsm"
	"github.com/mica-pki/mica/hsm/hsmtest"
	"github.com/mica-pki/mica/internal/testtool"
)

// shared is the token TestMain creates for this test binary.
var shared struct {
	module, uri string
	unavailable error // SoftHSM2 not installed: skip (or fail in CI)
	setupErr    error // installed but the token could not be made: fail
}

func setupSoftHSM() func() {
	if err := hsmtest.Available(); err != nil {
		shared.unavailable = err
		return func() {}
	}
	dir, err := os.MkdirTemp("", "mica-hsm-test-")
	if err != nil {
		shared.setupErr = err
		return func() {}
	}
	conf, err := hsmtest.InitToken(dir, hsmtest.TokenLabel)
	if err != nil {
		shared.setupErr = err
		return func() { os.RemoveAll(dir) }
	}
	// Before any PKCS#11 call in this process: SoftHSM2 reads it at
	// C_Initialize.
	os.Setenv("SOFTHSM2_CONF", conf)
	shared.module, _ = hsmtest.Module()
	shared.uri = hsm.PKCS11URI(shared.module, hsmtest.TokenLabel)
	return func() { os.RemoveAll(dir) }
}

func needSoftHSM(t testing.TB) {
	t.Helper()
	if shared.setupErr != nil {
		t.Fatalf("SoftHSM2 token setup failed: %v", shared.setupErr)
	}
	if shared.unavailable != nil {
		testtool.Missing(t, testtool.SoftHSM2, shared.unavailable)
	}
}

func pin() hsm.Secret { return hsm.NewSecret([]byte(hsmtest.UserPIN)) }

// openP11 opens the shared token; the backend is closed when the test ends.
func openP11(t testing.TB) hsm.Backend {
	t.Helper()
	needSoftHSM(t)
	b, err := hsm.Open(context.Background(), hsm.Config{URI: shared.uri, Secret: pin()})
	if err != nil {
		t.Fatalf("Open(%s): %v", shared.uri, err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// pkcs11Tool runs OpenSC's pkcs11-tool logged in to the shared token: an
// independent reader of what is really on the token.
func pkcs11Tool(t testing.TB, args ...string) string {
	t.Helper()
	testtool.Need(t, "pkcs11-tool") // OpenSC
	all := append([]string{"--module", shared.module, "--token-label", hsmtest.TokenLabel, "--login", "--pin", hsmtest.UserPIN}, args...)
	out, err := exec.Command("pkcs11-tool", all...).CombinedOutput()
	if err != nil {
		t.Fatalf("pkcs11-tool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// privateKeyAccess returns pkcs11-tool's "Access:" line for the private key
// labelled label.
func privateKeyAccess(listing, label string) (string, bool) {
	var inPriv, match bool
	var access string
	sc := bufio.NewScanner(strings.NewReader(listing))
	for sc.Scan() {
		line := sc.Text()
		if line != "" && line[0] != ' ' && line[0] != '\t' { // a new object
			if inPriv && match {
				return access, true
			}
			inPriv, match, access = strings.HasPrefix(line, "Private Key Object"), false, ""
			continue
		}
		k, v, _ := strings.Cut(strings.TrimSpace(line), ":")
		switch strings.TrimSpace(k) {
		case "label":
			match = strings.TrimSpace(v) == label
		case "Access":
			access = strings.TrimSpace(v)
		}
	}
	return access, inPriv && match
}

func TestPKCS11KeyTypes(t *testing.T) {
	ctx := context.Background()
	b := openP11(t)
	for _, kt := range []hsm.KeyType{hsm.ECP256, hsm.ECP384, hsm.RSA2048} {
		t.Run(string(kt), func(t *testing.T) {
			name := uniq("kt-" + strings.ToLower(string(kt)))
			u, err := b.CreateKey(ctx, name, kt)
			if err != nil {
				t.Fatalf("CreateKey: %v", err)
			}
			if !strings.HasPrefix(u, "pkcs11:id=") || !strings.HasSuffix(u, ";object="+name) || len(u) != len("pkcs11:id=;object=")+16+len(name) {
				t.Fatalf("key URI %q, want pkcs11:id=<16 hex>;object=%s", u, name)
			}
			s, err := b.Signer(ctx, u)
			if err != nil {
				t.Fatalf("Signer: %v", err)
			}
			// SoftHSM2 has no CKM_ECDSA_SHA256: this only passes because
			// crypto11 signs the digest with plain CKM_ECDSA.
			signVerify(t, s)
			if got, _ := hsm.KeyTypeOf(s.Public()); got != kt {
				t.Errorf("key type %q, want %q", got, kt)
			}
			if _, ok := s.(interface{ Delete() error }); ok {
				t.Fatal("Signer exposes crypto11's Delete")
			}
			pub, err := b.PublicKey(ctx, u)
			if err != nil || !reflect.DeepEqual(pub, s.Public()) {
				t.Fatalf("PublicKey = %v, %v", pub, err)
			}
			p, err := b.Protection(ctx, u)
			want := hsm.Protection{Backend: "pkcs11", OnToken: true, Sensitive: true, Extractable: false, AlwaysSensitive: true, NeverExtractable: true}
			if err != nil || p != want {
				t.Fatalf("Protection = %+v, %v; want %+v", p, err, want)
			}
			d, opts := digestFor(s)
			if _, err := s.Sign(rand.Reader, d[:len(d)-1], opts); err == nil {
				t.Fatal("a short digest must be refused (CKM_ECDSA would sign it)")
			}
		})
	}
}

// TestPKCS11ToolConfirmsProtection asks OpenSC, not our code, whether the
// key on the token is sensitive and never extractable.
func TestPKCS11ToolConfirmsProtection(t *testing.T) {
	ctx := context.Background()
	b := openP11(t)
	name := uniq("tool")
	if _, err := b.CreateKey(ctx, name, hsm.ECP256); err != nil {
		t.Fatal(err)
	}
	listing := pkcs11Tool(t, "--list-objects", "--type", "privkey")
	access, ok := privateKeyAccess(listing, name)
	if !ok {
		t.Fatalf("pkcs11-tool does not list private key %s:\n%s", name, listing)
	}
	for _, want := range []string{"sensitive", "always sensitive", "never extractable", "local"} {
		if !strings.Contains(access, want) {
			t.Errorf("pkcs11-tool Access %q lacks %q", access, want)
		}
	}
	if strings.Contains(strings.ReplaceAll(access, "never extractable", ""), "extractable") {
		t.Errorf("pkcs11-tool says the key is extractable: %q", access)
	}
}

func TestPKCS11CreateKeyRefusals(t *testing.T) {
	ctx := context.Background()
	b := openP11(t)
	if _, err := b.CreateKey(ctx, uniq("ed"), hsm.Ed25519); !errors.Is(err, hsm.ErrUnsupported) {
		t.Fatalf("Ed25519: want ErrUnsupported, got %v", err)
	}
	if _, err := b.CreateKey(ctx, uniq("p521"), hsm.KeyType("EC-P521")); !errors.Is(err, hsm.ErrUnsupported) {
		t.Fatalf("EC-P521: want ErrUnsupported, got %v", err)
	}
	for _, bad := range []string{"", "a/b", "a;b", "../x"} {
		if _, err := b.CreateKey(ctx, bad, hsm.ECP256); err == nil || errors.Is(err, hsm.ErrExists) {
			t.Fatalf("name %q: want a name error, got %v", bad, err)
		}
	}
	name := uniq("dup")
	u, err := b.CreateKey(ctx, name, hsm.ECP256)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.CreateKey(ctx, name, hsm.RSA2048); !errors.Is(err, hsm.ErrExists) {
		t.Fatalf("duplicate: want ErrExists, got %v", err)
	}
	keys, _ := b.Keys(ctx)
	n := 0
	for _, k := range keys {
		if k.Label == name {
			n++
			if k.URI != u {
				t.Errorf("listed URI %s, created %s", k.URI, u)
			}
		}
	}
	if n != 1 {
		t.Fatalf("%d keys labelled %s after a refused duplicate", n, name)
	}
}

// TestPKCS11ForeignKey: a key made by another tool (pkcs11-tool) is listed,
// usable, and blocks CreateKey of the same label.
func TestPKCS11ForeignKey(t *testing.T) {
	ctx := context.Background()
	b := openP11(t)
	label := uniq("opensc")
	pkcs11Tool(t, "--keypairgen", "--key-type", "EC:secp384r1", "--id", "c0ffee", "--label", label)
	keys, err := b.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var found *hsm.KeyInfo
	for i := range keys {
		if keys[i].Label == label {
			found = &keys[i]
		}
	}
	if found == nil || found.ID != "c0ffee" || found.Type != hsm.ECP384 || found.URI != "pkcs11:id=c0ffee;object="+label || !found.Protection.Sensitive {
		t.Fatalf("foreign key listed as %+v", found)
	}
	s, err := b.Signer(ctx, found.URI)
	if err != nil {
		t.Fatal(err)
	}
	signVerify(t, s)
	if _, err := b.CreateKey(ctx, label, hsm.ECP256); !errors.Is(err, hsm.ErrExists) {
		t.Fatalf("CreateKey over foreign label: want ErrExists, got %v", err)
	}
}

func TestPKCS11KeysAndURIs(t *testing.T) {
	ctx := context.Background()
	b := openP11(t)
	want := map[string]hsm.KeyType{uniq("list-a"): hsm.ECP256, uniq("list-b"): hsm.RSA2048}
	uris := map[string]string{}
	for n, kt := range want {
		u, err := b.CreateKey(ctx, n, kt)
		if err != nil {
			t.Fatal(err)
		}
		uris[n] = u
	}
	keys, err := b.Keys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	for _, k := range keys {
		kt, ok := want[k.Label]
		if !ok {
			continue
		}
		seen++
		if k.Type != kt || k.URI != uris[k.Label] || !strings.HasSuffix(k.URI, "id="+k.ID+";object="+k.Label) ||
			!k.Protection.OnToken || !k.Protection.Sensitive || k.Protection.Extractable {
			t.Errorf("bad KeyInfo %+v", k)
		}
	}
	if seen != len(want) {
		t.Fatalf("Keys listed %d of %d created keys: %+v", seen, len(want), keys)
	}

	var name string
	for n := range want {
		name = n
		break
	}
	id := strings.TrimSuffix(strings.TrimPrefix(uris[name], "pkcs11:id="), ";object="+name)
	for _, u := range []string{"pkcs11:object=" + name, "pkcs11:id=" + id, "pkcs11:token=mica;object=" + name,
		"pkcs11:module-path=" + shared.module + ";token=mica;id=" + id + ";object=" + name + "?type=private"} {
		if _, err := b.Signer(ctx, u); err != nil {
			t.Errorf("Signer(%s): %v", u, err)
		}
	}
	for _, u := range []string{"pkcs11:token=other;object=" + name, "pkcs11:object=" + name + "?pin-value=1234", "pkcs11:", "softkms:name=" + name, "pkcs11:type=public;object=" + name} {
		if _, err := b.Signer(ctx, u); err == nil || errors.Is(err, hsm.ErrNotFound) {
			t.Errorf("Signer(%s): want a URI error, got %v", u, err)
		}
	}
	for _, u := range []string{"pkcs11:object=missing", "pkcs11:id=0102030405060708", "pkcs11:id=" + id + ";object=wrong"} {
		if _, err := b.Signer(ctx, u); !errors.Is(err, hsm.ErrNotFound) {
			t.Errorf("Signer(%s): want ErrNotFound, got %v", u, err)
		}
		if _, err := b.Protection(ctx, u); !errors.Is(err, hsm.ErrNotFound) {
			t.Errorf("Protection(%s): want ErrNotFound, got %v", u, err)
		}
	}
}

func TestPKCS11ConcurrentSign(t *testing.T) {
	ctx := context.Background()
	b := openP11(t)
	var signers []string
	for _, kt := range []hsm.KeyType{hsm.ECP256, hsm.RSA2048} {
		u, err := b.CreateKey(ctx, uniq("conc"), kt)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, u)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, err := b.Signer(ctx, signers[i%len(signers)])
			if err != nil {
				errs <- err
				return
			}
			for range 25 {
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
			if _, err := b.Protection(ctx, signers[i%len(signers)]); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// TestPKCS11Reopen: Open/Close repeatedly in one process, and two backends
// on one module at once, where closing one must not finalise the module
// under the other.
func TestPKCS11Reopen(t *testing.T) {
	needSoftHSM(t)
	ctx := context.Background()
	open := func() hsm.Backend {
		b, err := hsm.Open(ctx, hsm.Config{URI: shared.uri, Secret: pin()})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var u string
	for i := range 3 {
		b := open()
		if i == 0 {
			var err error
			if u, err = b.CreateKey(ctx, uniq("reopen"), hsm.ECP256); err != nil {
				t.Fatal(err)
			}
		}
		s, err := b.Signer(ctx, u)
		if err != nil {
			t.Fatalf("round %d: %v", i, err)
		}
		signVerify(t, s)
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
		if _, err := b.Keys(ctx); !errors.Is(err, hsm.ErrClosed) {
			t.Fatalf("Keys after Close: want ErrClosed, got %v", err)
		}
	}

	a, c := open(), open()
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	s, err := c.Signer(ctx, u)
	if err != nil {
		t.Fatalf("second backend after first closed: %v", err)
	}
	signVerify(t, s)
	if _, err := c.Protection(ctx, u); err != nil {
		t.Fatalf("reader of second backend after first closed: %v", err)
	}
	c.Close()
}

func benchPKCS11(b *testing.B)         { benchBackend(b, openP11(b), false) }
func benchPKCS11Parallel(b *testing.B) { benchBackend(b, openP11(b), true) }
