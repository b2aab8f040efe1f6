package cab_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/cab"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

type pki struct {
	ca    *testca.CA
	leaf  *testca.Cert
	files testca.Files
	certs []*signing.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	p := &pki{ca: ca, leaf: leaf, files: ca.WriteFiles(t, t.TempDir(), leaf)}
	root, err := signing.ParseCertificate(ca.Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	p.certs = []*signing.Certificate{root}
	return p
}

func (p *pki) opts(expect cipolicy.Digests, appendSig bool) *format.SignOptions {
	return &format.SignOptions{Key: p.leaf.Key, Chain: []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, Expect: expect, Append: appendSig, Sum: true}
}

func osslEnv() []string {
	return testenv.NoProxyEnv()
}

var calculated = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

// ossl runs osslsigncode (sign or verify) on data; it returns the signed
// file (sign), whether it succeeded, the digest it calculated and its
// output.
func (p *pki) ossl(t testing.TB, data []byte, verb string) ([]byte, bool, string, string) {
	t.Helper()
	tool := testenv.Tool(t, "osslsigncode")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.cab"), filepath.Join(dir, "out.cab")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	var argv []string
	if verb == "sign" {
		argv = []string{"sign", "-certs", p.files.Chain, "-key", p.files.Key, "-in", in, "-out", out}
	} else {
		argv = []string{"verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", in}
	}
	cmd := exec.Command(tool, argv...)
	cmd.Env = osslEnv()
	b, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	var signed []byte
	if verb == "sign" && err == nil {
		if signed, err = os.ReadFile(out); err != nil {
			t.Fatal(err)
		}
	}
	digest := ""
	if m := calculated.FindStringSubmatch(string(b)); m != nil {
		digest = strings.ToLower(m[1])
	}
	return signed, err == nil, digest, string(b)
}

// gcab makes an MSZIP cabinet of generated files.
func gcab(t testing.TB) []byte {
	t.Helper()
	tool := testenv.Tool(t, "gcab")
	dir := t.TempDir()
	r := rand.New(rand.NewPCG(1, 2))
	for name, n := range map[string]int{"app.exe": 90_000, "x.dll": 20_000} {
		b := make([]byte, n)
		for i := range b {
			if i%3 == 0 {
				b[i] = byte(r.IntN(256))
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(tool, "-c", "-z", "out.cab", "app.exe", "x.dll")
	cmd.Dir = dir
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("gcab: %v\n%s", err, b)
	}
	b, err := os.ReadFile(filepath.Join(dir, "out.cab"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestSniff(t *testing.T) {
	if !formattest.Sniff(cab.Handler{}, []byte("MSCF\x00\x00\x00\x00")) || formattest.Sniff(cab.Handler{}, []byte("MZ\x90\x00")) || formattest.Sniff(cab.Handler{}, []byte("MSC")) {
		t.Fatal("Sniff")
	}
}

// TestPeers: a cabinet osslsigncode signs and one csv signs verify in
// both, with the digest both calculate; a changed byte is refused by both;
// an unsigned cabinet's digest is its signed copy's.
func TestPeers(t *testing.T) {
	p := newPKI(t)
	data := gcab(t)
	osslSigned, ok, _, out := p.ossl(t, data, "sign")
	if !ok {
		t.Fatalf("osslsigncode sign: %s", out)
	}
	unsigned := formattest.Inspect(cab.Handler{}, data, cipolicy.AllNeeds(), p.certs)
	if unsigned.Err != nil || unsigned.Facts.Signed {
		t.Fatalf("unsigned: %v", unsigned.Err)
	}
	for signer, signed := range map[string][]byte{"osslsigncode": osslSigned, "csv": formattest.Sign(t, cab.Handler{}, data, p.opts(nil, false))} {
		res := formattest.Inspect(cab.Handler{}, signed, cipolicy.AllNeeds(), p.certs)
		formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
		if res.Err != nil || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
			t.Fatalf("%s: %v %+v", signer, res.Err, res.Facts.Signatures)
		}
		_, ok, digest, out := p.ossl(t, signed, "verify")
		if !ok || digest != hex.EncodeToString(res.Digests.Get(cipolicy.AuthenticodeSHA256)) {
			t.Fatalf("%s: osslsigncode (ok %v) calculated %s, csv %x:\n%s", signer, ok, digest, res.Digests.Get(cipolicy.AuthenticodeSHA256), out)
		}
		for _, a := range []cipolicy.HashAlgorithm{cipolicy.AuthenticodeSHA256, cipolicy.AuthenticodeSHA1} {
			if u := unsigned.Digests.Get(a); len(u) != a.Size() || !bytes.Equal(u, res.Digests.Get(a)) {
				t.Errorf("%s: %s unsigned %x, signed %x", signer, a, u, res.Digests.Get(a))
			}
		}
		info := res.Facts.Info.(*cab.Info)
		if info.Files != 2 || info.Folders != 1 || info.Reserve != 20 || info.SignatureSize == 0 || info.SignatureOffset+info.SignatureSize != int64(len(signed)) || info.Compression[0] != "MSZIP" {
			t.Errorf("%s: info %+v", signer, info)
		}
		bad := bytes.Clone(signed)
		bad[info.Size-5] ^= 0x10
		res = formattest.Inspect(cab.Handler{}, bad, cipolicy.AllNeeds(), p.certs)
		if res.Err != nil || len(res.Facts.Signatures) != 1 || res.Facts.Signatures[0].Verified() || !errors.Is(res.Facts.Signatures[0].Problem, signing.ErrDigestMismatch) {
			t.Errorf("%s: a changed byte: %v %+v", signer, res.Err, res.Facts.Signatures)
		}
		if _, ok, _, _ := p.ossl(t, bad, "verify"); ok {
			t.Errorf("%s: osslsigncode accepts a changed byte", signer)
		}
	}
	nested := formattest.Sign(t, cab.Handler{}, osslSigned, p.opts(nil, true))
	if _, ok, _, out := p.ossl(t, nested, "verify"); !ok || !strings.Contains(out, "Number of verified signatures: 2") {
		t.Errorf("nested:\n%s", out)
	}
	if res := formattest.Inspect(cab.Handler{}, nested, cipolicy.AllNeeds(), p.certs); res.Err != nil || len(res.Facts.Signatures) != 2 {
		t.Errorf("nested: %v %+v", res.Err, res.Facts.Signatures)
	}
}

// TestMalformed: a malformed cabinet is a *format.MalformedError however
// little the policy asks.
func TestMalformed(t *testing.T) {
	p := newPKI(t)
	data := gcab(t)
	signed := formattest.Sign(t, cab.Handler{}, data, p.opts(nil, false))
	for name, b := range map[string][]byte{
		"cut":                    signed[:len(signed)-20],
		"bytes after":            append(bytes.Clone(signed), 0),
		"cut unsigned":           data[:len(data)-1],
		"not a cabinet":          []byte("MSCF is not a cabinet"),
		"garbage signature":      append(bytes.Clone(signed[:len(signed)-8]), 1, 2, 3, 4, 5, 6, 7, 8),
		"uncovered byte changed": func() []byte { b := bytes.Clone(signed); b[52] = 1; return b }(),
		"version 1.4, not 1.3":   func() []byte { b := bytes.Clone(data); b[24] = 4; return b }(),
		"reserved1 not zero":     func() []byte { b := bytes.Clone(signed); b[4] = 1; return b }(),
		"signature offset wrong": func() []byte { b := bytes.Clone(signed); b[44]++; return b }(),
	} {
		for _, need := range []cipolicy.Needs{{}, {Digests: cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)}, cipolicy.AllNeeds()} {
			res := formattest.Inspect(cab.Handler{}, b, need, p.certs)
			var me *format.MalformedError
			if !errors.As(res.Err, &me) || me.Format != cipolicy.FormatCab || !errors.Is(res.Err, signing.ErrMalformed) {
				t.Errorf("%s (%v): %v (%T)", name, need, res.Err, res.Err)
			}
		}
	}
}

// TestSignExpect: with the digests validation saw, a cabinet is signed
// (and osslsigncode verifies it); one whose digest (or, when appending,
// whole SHA256) differs is not.
func TestSignExpect(t *testing.T) {
	p := newPKI(t)
	data := gcab(t)
	res := formattest.Inspect(cab.Handler{}, data, cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)}, nil)
	auth := res.Digests.Get(cipolicy.AuthenticodeSHA256)
	sign := func(data []byte, expect cipolicy.Digests, appendSig bool) ([]byte, error) {
		f, err := os.Create(filepath.Join(t.TempDir(), "out"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		r := bytes.NewReader(data)
		n, _ := r.Read(buf[:min(len(data), format.SniffSize)])
		s, err := cab.Handler{}.Sign(context.Background(), format.NewFile(r, int64(len(data)), buf, n), f, p.opts(expect, appendSig))
		if err != nil {
			return nil, err
		}
		b, _ := os.ReadFile(f.Name())
		if got := sha256.Sum256(b); !bytes.Equal(got[:], s.SHA256) {
			t.Errorf("Signed.SHA256 %x, the file's %x", s.SHA256, got)
		}
		return b, nil
	}
	signed, err := sign(data, cipolicy.Digests{cipolicy.AuthenticodeSHA256: auth}, false)
	if err != nil {
		t.Fatalf("as validated: %v", err)
	}
	if _, ok, _, out := p.ossl(t, signed, "verify"); !ok {
		t.Errorf("osslsigncode:\n%s", out)
	}
	changed := bytes.Clone(data)
	changed[len(changed)-1] ^= 1
	if _, err := sign(changed, cipolicy.Digests{cipolicy.AuthenticodeSHA256: auth}, false); !errors.Is(err, format.ErrChanged) {
		t.Errorf("changed cabinet: %v", err)
	}
	if _, err := sign(signed, cipolicy.Digests{cipolicy.AuthenticodeSHA256: auth, cipolicy.SHA256: make([]byte, 32)}, true); !errors.Is(err, format.ErrChanged) {
		t.Errorf("append to a changed signature: %v", err)
	}
}

// FuzzInspect runs the handler on arbitrary bytes: an error is a
// *format.MalformedError, never a panic. Seeds: gcab's cabinet, signed by
// osslsigncode and by csv, cut and changed.
func FuzzInspect(f *testing.F) {
	p := newPKI(f)
	f.Add([]byte(nil))
	f.Add([]byte("MSCF\x00\x00\x00\x00"))
	// The peers' seeds where they are installed (the CI fuzz job has
	// neither).
	if _, err := exec.LookPath("gcab"); err == nil {
		data := gcab(f)
		signed := formattest.Sign(f, cab.Handler{}, data, p.opts(nil, false))
		for _, seed := range [][]byte{data, signed, signed[:len(signed)/2], signed[:len(signed)-3], data[:100]} {
			f.Add(seed)
		}
		if _, err := exec.LookPath("osslsigncode"); err == nil {
			osslSigned, _, _, _ := p.ossl(f, data, "sign")
			f.Add(osslSigned)
		}
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res := formattest.Inspect(cab.Handler{}, data, cipolicy.AllNeeds(), p.certs)
		formattest.CheckInvariants(t, res, cipolicy.AllNeeds())
	})
}
