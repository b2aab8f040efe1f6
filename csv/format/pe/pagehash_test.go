package pe_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/csv/format/pe"
	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	authpe "github.com/codesignval/csv/signing/authenticode/pe"
)

// osslPageTable signs data with osslsigncode -ph (digest h) and returns
// the page-hash table it wrote in the signature.
func osslPageTable(t *testing.T, ossl string, files testca.Files, data []byte, h crypto.Hash) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.exe"), filepath.Join(dir, "out.exe")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	alg := map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256"}[h]
	if b, err := exec.Command(ossl, "sign", "-ph", "-h", alg, "-certs", files.Chain, "-key", files.Key, "-in", in, "-out", out).CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode sign -ph: %v\n%s", err, b)
	}
	signed, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := binpe.Parse(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	table, err := authpe.ParseTable(signed[pf.CertTable.Off:], pf.CertTable.Off)
	if err != nil {
		t.Fatal(err)
	}
	st := table.Signatures()[0]
	p, err := authenticode.Parse(st.DER, st.DEROffset, st.ZeroPadding)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := authpe.PageHashTables(p.Data)
	if err != nil || len(pts) != 1 || pts[0].Hash != h {
		t.Fatalf("osslsigncode's page hashes: %v, %v", pts, err)
	}
	return pts[0].Table
}

// TestPageDigestsMatchOsslsigncode: the first-page digests the handler
// computes in its one read, of generated and real PE files, are the first
// entry of the page-hash table osslsigncode -ph writes, with SHA1 and
// SHA256; they are computed only when asked for.
func TestPageDigestsMatchOsslsigncode(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	files := ca.WriteFiles(t, t.TempDir(), ca.Leaf(t, testca.LeafOptions{}))
	inputs := map[string][]byte{
		"pe32+": testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte("page"), 3000)}),
		"pe32":  testbin.PE(testbin.PEOptions{PE32: true}),
	}
	dir := testenv.Shared(t, "testdata/pe")
	for _, name := range []string{"uthenticode/32-pegoat.exe", "uthenticode/64-pegoat-authenticode.exe", "authenticode-rs/tiny64.efi"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		inputs[name] = b
	}
	need := cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.PageSHA256, cipolicy.PageSHA1)}
	for name, data := range inputs {
		res := formattest.Inspect(pe.Handler{}, data, need, nil)
		if res.Err != nil {
			t.Fatalf("%s: %v", name, res.Err)
		}
		formattest.CheckInvariants(t, res, need)
		for h, a := range map[crypto.Hash]cipolicy.HashAlgorithm{crypto.SHA1: cipolicy.PageSHA1, crypto.SHA256: cipolicy.PageSHA256} {
			table := osslPageTable(t, ossl, files, data, h)
			if got, want := res.Digests.Get(a), table[4:4+h.Size()]; !bytes.Equal(got, want) {
				t.Errorf("%s: %s %x, osslsigncode's first page hash %x", name, a, got, want)
			}
		}
		if d := formattest.Inspect(pe.Handler{}, data, cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.AuthenticodeSHA256)}, nil).Digests; d.Get(cipolicy.PageSHA256) != nil {
			t.Errorf("%s: page digests computed unasked: %v", name, d)
		}
	}
}

// TestSignWithPageHashes: the handler signs with a page-hash table when
// asked; osslsigncode verify accepts the file (it checks every page) and
// the handler verifies it with the table checked (Signature.PageHashes);
// a changed byte in a page makes both refuse it.
func TestSignWithPageHashes(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	img := testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte("page"), 3000)})
	data := formattest.Sign(t, pe.Handler{}, img, &format.SignOptions{Key: leaf.Key,
		Chain: []*x509.Certificate{leaf.Cert, ca.Intermediate.Cert}, PageHashes: true})
	dir := t.TempDir()
	files := ca.WriteFiles(t, dir, leaf)
	verify := func(b []byte) (bool, string) {
		p := filepath.Join(dir, "v.exe")
		os.WriteFile(p, b, 0o600)
		out, err := exec.Command(ossl, "verify", "-CAfile", files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", p).CombinedOutput()
		return err == nil, string(out)
	}
	if ok, out := verify(data); !ok || !bytes.Contains([]byte(out), []byte("Page hash algorithm  : SHA256")) {
		t.Fatalf("osslsigncode verify (ok %v):\n%s", ok, out)
	}
	res := formattest.Inspect(pe.Handler{}, data, cipolicy.AllNeeds(), roots(t, ca))
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if s := res.Facts.Signatures; len(s) != 1 || !s[0].Verified() || s[0].PageHashes != crypto.SHA256 {
		t.Fatalf("signatures %+v", s)
	}
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	sec := pf.Sections[len(pf.Sections)-1]
	bad := bytes.Clone(data)
	bad[sec.PointerToRawData+5000] ^= 0x20
	if ok, out := verify(bad); ok {
		t.Errorf("osslsigncode accepts a changed page:\n%s", out)
	}
	res = formattest.Inspect(pe.Handler{}, bad, cipolicy.AllNeeds(), roots(t, ca))
	if s := res.Facts.Signatures; res.Err != nil || len(s) != 1 || s[0].Verified() || s[0].PageHashes != 0 ||
		!errors.Is(s[0].Problem, signing.ErrDigestMismatch) && !errors.Is(s[0].Problem, authpe.ErrPageHashes) {
		t.Errorf("a changed page: err %v, signatures %+v", res.Err, s)
	}
}

// TestFirstPageOfLargeHeaders: a PE whose headers exceed a page has no
// first-page hash csv can vouch for: a policy that compares one blocks it
// as malformed, saying why; csv inspect (every digest) shows the file
// without it.
func TestFirstPageOfLargeHeaders(t *testing.T) {
	img := testbin.PE(testbin.PEOptions{Data: make([]byte, 3*authpe.PageSize)})
	pf, err := binpe.Parse(bytes.NewReader(img), int64(len(img)))
	if err != nil {
		t.Fatal(err)
	}
	// SizeOfHeaders is the optional header's field 60 bytes in, 28
	// before the CheckSum field.
	big := bytes.Clone(img)
	big[pf.CheckSumOffset-4] = 0
	big[pf.CheckSumOffset-3] = 0x20 // 0x2000 bytes
	need := cipolicy.Needs{Digests: cipolicy.NewDigestSet(cipolicy.PageSHA256)}
	res := formattest.Inspect(pe.Handler{}, big, need, nil)
	var me *format.MalformedError
	if !errors.As(res.Err, &me) || !errors.Is(res.Err, authpe.ErrPageHashes) {
		t.Fatalf("headers over a page, a page hash needed: err %v", res.Err)
	}
	res = formattest.Inspect(pe.Handler{}, big, cipolicy.AllNeeds(), nil)
	if res.Err != nil || res.Digests.Get(cipolicy.PageSHA256) != nil || res.Digests.Get(cipolicy.AuthenticodeSHA256) == nil {
		t.Errorf("every digest: err %v, digests %v", res.Err, res.Digests)
	}
}
