package catalog_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/catalog"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authcat "github.com/codesignval/csv/signing/authenticode/catalog"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

type fixture struct {
	ca    *testca.CA
	leaf  *testca.Cert
	chain []*x509.Certificate
	pe    []byte
	entry authcat.Entry
}

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{CommonName: "Catalog Signer"})
	img := testbin.PE(testbin.PEOptions{Data: []byte("catalogued")})
	kind, d, err := authcat.HashFile(bytes.NewReader(img), int64(len(img)), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{ca: ca, leaf: leaf, chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, pe: img,
		entry: authcat.Entry{Name: "driver.sys", Kind: kind, Hash: crypto.SHA256, Digest: d}}
}

func (fx *fixture) ctl(t testing.TB) []byte {
	t.Helper()
	ctl, err := authcat.Build([]authcat.Entry{fx.entry}, authcat.BuildOptions{ThisUpdate: testca.Epoch,
		Attributes: []authcat.NameValue{{Name: "OSAttr", Value: "2:10.0"}}})
	if err != nil {
		t.Fatal(err)
	}
	return ctl
}

func (fx *fixture) signed(t testing.TB) []byte {
	t.Helper()
	s, err := authenticode.NewSigner(fx.leaf.Key, fx.chain, authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	der, err := authcat.Sign(context.Background(), s, fx.ctl(t))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func (fx *fixture) unsigned(t testing.TB) []byte {
	t.Helper()
	der, err := authcat.Unsigned(fx.ctl(t))
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestSniff: a catalog is recognised by its content, signed or not; an
// Authenticode signature of a file, a PE and text are not catalogs.
func TestSniff(t *testing.T) {
	fx := newFixture(t)
	s, err := authenticode.NewSigner(fx.leaf.Key, fx.chain, authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	peSig, err := s.SignDigest(context.Background(), fx.entry.Digest, new(pe.Table).IndirectData())
	if err != nil {
		t.Fatal(err)
	}
	signed := fx.signed(t)
	for _, tc := range []struct {
		name string
		data []byte
		want bool
	}{
		{"signed", signed, true},
		{"unsigned", fx.unsigned(t), true},
		{"first 64 bytes", signed[:64], true},
		{"first 20 bytes", signed[:20], false},
		{"PE signature", peSig, false},
		{"pe", fx.pe, false},
		{"text", []byte("0\x82 not a catalog"), false},
		{"empty", nil, false},
	} {
		if got := formattest.Sniff(catalog.Handler{}, tc.data); got != tc.want {
			t.Errorf("%s: Sniff = %v", tc.name, got)
		}
	}
}

// TestInspect: a signed catalog's members, attributes and verified signer;
// a tampered or unsigned one admits nothing, saying why; a cut one is
// malformed.
func TestInspect(t *testing.T) {
	fx := newFixture(t)
	signed := fx.signed(t)
	res := formattest.Inspect(catalog.Handler{}, signed, cipolicy.AllNeeds(), nil)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	info := res.Facts.Info.(*catalog.Info)
	if !info.Verified || info.Catalog() == nil || info.MemberCount != 1 || info.Members[0].File != "driver.sys" ||
		info.Members[0].Type != "PE image" || info.Members[0].Algorithm != "sha256" {
		t.Fatalf("info %+v", info)
	}
	if len(info.Attributes) != 1 || info.Attributes[0] != (catalog.Attribute{Name: "OSAttr", Value: "2:10.0"}) {
		t.Errorf("attributes %+v", info.Attributes)
	}
	if !res.Facts.Signed || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
		t.Fatalf("signatures %+v", res.Facts.Signatures)
	}
	if got := info.Catalog().Lookup(crypto.SHA256, fx.entry.Digest); len(got) != 1 {
		t.Errorf("Lookup = %v", got)
	}
	var text bytes.Buffer
	info.WriteText(&text, func(k, v string) { text.WriteString(k + ": " + v + "\n") })
	if !strings.Contains(text.String(), "driver.sys") || !strings.Contains(info.Describe(), "1 member, signature verified") {
		t.Errorf("text %q, %q", text.String(), info.Describe())
	}

	t.Run("tampered", func(t *testing.T) {
		der := bytes.Clone(signed)
		der[bytes.Index(der, fx.entry.Digest)] ^= 1
		res := formattest.Inspect(catalog.Handler{}, der, cipolicy.AllNeeds(), nil)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		info := res.Facts.Info.(*catalog.Info)
		if info.Verified || info.Catalog() != nil || !errors.Is(info.Problem(), signing.ErrSignedAttributes) {
			t.Fatalf("tampered catalog: verified %v, problem %v", info.Verified, info.Problem())
		}
	})
	t.Run("unsigned", func(t *testing.T) {
		res := formattest.Inspect(catalog.Handler{}, fx.unsigned(t), cipolicy.AllNeeds(), nil)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		info := res.Facts.Info.(*catalog.Info)
		if info.Signed || info.Catalog() != nil || !errors.Is(info.Problem(), authcat.ErrUnsigned) {
			t.Fatalf("unsigned catalog: %+v, problem %v", info, info.Problem())
		}
	})
	t.Run("cut", func(t *testing.T) {
		res := formattest.Inspect(catalog.Handler{}, signed[:len(signed)-10], cipolicy.AllNeeds(), nil)
		var me *format.MalformedError
		if !errors.As(res.Err, &me) || !errors.Is(res.Err, signing.ErrMalformed) {
			t.Fatalf("cut catalog: %v", res.Err)
		}
	})
}

// TestSign: the handler signs an unsigned catalog; osslsigncode verifies
// the result and accepts the member against it; Append is refused.
func TestSign(t *testing.T) {
	fx := newFixture(t)
	out := formattest.Sign(t, catalog.Handler{}, fx.unsigned(t), &format.SignOptions{Key: fx.leaf.Key, Chain: fx.chain})
	res := formattest.Inspect(catalog.Handler{}, out, cipolicy.AllNeeds(), nil)
	if res.Err != nil || res.Facts.Info.(*catalog.Info).Catalog() == nil {
		t.Fatalf("the signed catalog does not verify: %v", res.Err)
	}
	tool := testenv.Tool(t, "osslsigncode")
	dir := t.TempDir()
	files := fx.ca.WriteFiles(t, dir, fx.leaf)
	cat, sys := filepath.Join(dir, "out.cat"), filepath.Join(dir, "driver.sys")
	for p, b := range map[string][]byte{cat: out, sys: fx.pe} {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, args := range [][]string{
		{"verify", "-CAfile", files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", cat},
		{"verify", "-CAfile", files.Root, "-catalog", cat, "-in", sys},
	} {
		if b, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Errorf("osslsigncode %v: %v\n%s", args, err, b)
		}
	}

	r := bytes.NewReader(out)
	buf := make([]byte, 64<<10)
	n, _ := r.Read(buf[:format.SniffSize])
	f := format.NewFile(r, int64(len(out)), buf, n)
	o, err := os.Create(filepath.Join(dir, "appended.cat"))
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if _, err := (catalog.Handler{}).Sign(context.Background(), f, o, &format.SignOptions{Key: fx.leaf.Key, Chain: fx.chain, Append: true}); !errors.Is(err, format.ErrOneSignature) {
		t.Fatalf("Append: %v, want ErrOneSignature", err)
	}
}

// FuzzInspect runs Inspect on arbitrary bytes, seeded with a signed, an
// unsigned and cut catalogs, and checks the handlers' invariants.
func FuzzInspect(f *testing.F) {
	fx := newFixture(f)
	signed, unsigned := fx.signed(f), fx.unsigned(f)
	for _, s := range [][]byte{signed, unsigned} {
		f.Add(s)
		f.Add(s[:len(s)/2])
		f.Add(s[:len(s)-1])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		need := cipolicy.AllNeeds()
		if !formattest.Sniff(catalog.Handler{}, data) {
			return
		}
		res := formattest.Inspect(catalog.Handler{}, data, need, nil)
		formattest.CheckInvariants(t, res, need)
		if res.Err == nil {
			info := res.Facts.Info.(*catalog.Info)
			if info.Catalog() != nil && !res.Facts.Signatures[0].Verified() {
				t.Fatal("a catalog that admits files without a verified signature")
			}
		}
	})
}
