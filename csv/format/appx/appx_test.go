package appx_test

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/appx"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/internal/testappx"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	sappx "github.com/codesignval/csv/signing/authenticode/appx"
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

func (p *pki) opts(expect cipolicy.Digests) *format.SignOptions {
	return &format.SignOptions{Key: p.leaf.Key, Chain: []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, Expect: expect, Sum: true}
}

func pkg(t testing.TB) []byte {
	return testappx.Build(t, testappx.Options{Files: []testappx.File{
		{Name: "app.exe", Data: testbin.PE(testbin.PEOptions{Data: bytes.Repeat([]byte("data"), 30_000)})},
		{Name: "lib/x.dll", Data: testbin.PE(testbin.PEOptions{PE32: true}), Store: true},
	}})
}

var need = cipolicy.Needs{Signatures: true, Digests: cipolicy.NewDigestSet(cipolicy.SHA256)}

// TestInspectAndSign: the handler finds osslsigncode's signature verified
// and counted by Windows; what it signs, with the block map's hash even
// when asked for another, osslsigncode verifies; an expectation that is not
// the file's refuses signing (format.ErrChanged); Append is refused.
func TestInspectAndSign(t *testing.T) {
	p := newPKI(t)
	unsigned := pkg(t)
	if !formattest.SniffNamed(appx.Handler{}, "x.MSIX", unsigned) || formattest.SniffNamed(appx.Handler{}, "x.zip", unsigned) {
		t.Fatal("Sniff")
	}
	res := formattest.InspectNamed(appx.Handler{}, "x.appx", unsigned, need, p.certs)
	if res.Err != nil || res.Facts.Signed || res.Facts.Info.(*appx.Info).Publisher != testappx.DefaultPublisher {
		t.Fatalf("unsigned: %v %+v", res.Err, res.Facts)
	}
	signed := testappx.Sign(t, p.files, unsigned)
	res = formattest.InspectNamed(appx.Handler{}, "x.appx", signed, need, p.certs)
	if res.Err != nil || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() || len(res.Facts.Signatures[0].IgnoredBy[signing.HostWindows]) > 0 {
		t.Fatalf("signed: %v %+v", res.Err, res.Facts.Signatures)
	}
	sum := sha256.Sum256(unsigned)
	expect := cipolicy.Digests{}
	expect[cipolicy.SHA256] = sum[:]
	o := p.opts(expect)
	o.Authenticode.Hash = crypto.SHA384
	mine := formattest.SignNamed(t, appx.Handler{}, "x.appx", unsigned, o)
	if ok, _, out := testappx.Verify(t, p.files, mine); !ok {
		t.Fatalf("osslsigncode refuses csv's package:\n%s", out)
	}
	res = formattest.InspectNamed(appx.Handler{}, "x.appx", mine, need, p.certs)
	if res.Err != nil || len(res.Facts.Signatures) != 1 || res.Facts.Signatures[0].DigestAlgorithm != crypto.SHA256 {
		t.Fatalf("csv's: %v %+v", res.Err, res.Facts.Signatures)
	}
	other := cipolicy.Digests{}
	other[cipolicy.SHA256] = make([]byte, 32)
	for name, o := range map[string]*format.SignOptions{"changed": p.opts(other), "append": func() *format.SignOptions { o := p.opts(nil); o.Append = true; return o }()} {
		r := bytes.NewReader(unsigned)
		buf := make([]byte, format.SniffSize)
		n, _ := r.Read(buf)
		f := format.NewFile(r, int64(len(unsigned)), buf, n)
		f.Name = "x.appx"
		out, _ := os.Create(filepath.Join(t.TempDir(), "out"))
		_, err := appx.Handler{}.Sign(t.Context(), f, out, o)
		out.Close()
		want := format.ErrChanged
		if name == "append" {
			want = format.ErrOneSignature
		}
		if !errors.Is(err, want) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestNoBlockMap: a package without a block map is malformed.
func TestNoBlockMap(t *testing.T) {
	unsigned := pkg(t)
	b := bytes.ReplaceAll(unsigned, []byte(sappx.BlockMapName), []byte("AppxBlockMaq.xml"))
	res := formattest.InspectNamed(appx.Handler{}, "x.appx", b, need, nil)
	if !errors.Is(res.Err, appx.ErrNoBlockMap) {
		t.Fatalf("%v", res.Err)
	}
}

// FuzzInspect: inspecting any bytes named as a package keeps the
// handlers' invariants.
func FuzzInspect(f *testing.F) {
	p := newPKI(f)
	unsigned := testappx.Build(f, testappx.Options{Files: []testappx.File{{Name: "a.dll", Data: testbin.PE(testbin.PEOptions{PE32: true})}}})
	signed := testappx.Sign(f, p.files, unsigned)
	for _, b := range [][]byte{unsigned, signed} {
		f.Add(b)
		f.Add(b[:len(b)-3])
		f.Add(b[:len(b)/3])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		res := formattest.InspectNamed(appx.Handler{}, "f.msix", b, need, p.certs)
		formattest.CheckInvariants(t, res, need)
	})
}

// benchSigned is a package of 48 MiB of payload (24 PE-sized files of 2
// MiB, a third zero runs) signed by osslsigncode, and its path.
func benchSigned(b *testing.B) (*pki, []byte, []byte, string) {
	p := newPKI(b)
	var fs []testappx.File
	for i := range 24 {
		buf := make([]byte, 2<<20)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := 0; j < len(buf); j += 96 {
			for k := j; k < min(j+64, len(buf)); k++ {
				buf[k] = byte(r.Uint32())
			}
		}
		fs = append(fs, testappx.File{Name: fmt.Sprintf("bin/x%02d.dll", i), Data: buf})
	}
	unsigned := testappx.Build(b, testappx.Options{Files: fs})
	signed := testappx.Sign(b, p.files, unsigned)
	dir := b.TempDir()
	path := filepath.Join(dir, "signed.msix")
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "unsigned.msix"), unsigned, 0o644); err != nil {
		b.Fatal(err)
	}
	return p, unsigned, signed, path
}

// BenchmarkVerify: csv's inspection of the signed package: the zip, the
// block map against every member (each decompressed and hashed), the
// APPX digests and the signature; BenchmarkOsslVerify runs osslsigncode
// verify on the same file, which does not read the block map's hashes.
func BenchmarkVerify(b *testing.B) {
	p, _, signed, _ := benchSigned(b)
	b.SetBytes(int64(len(signed)))
	start := cpuTime()
	defer func() { reportCPU(b, cpuTime()-start, int64(len(signed))) }()
	for b.Loop() {
		res := formattest.InspectNamed(appx.Handler{}, "x.msix", signed, cipolicy.Needs{Signatures: true}, p.certs)
		if res.Err != nil || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
			b.Fatalf("%v", res.Err)
		}
	}
}

func BenchmarkOsslVerify(b *testing.B) {
	p, _, signed, path := benchSigned(b)
	tool := testenv.Tool(b, "osslsigncode")
	b.SetBytes(int64(len(signed)))
	var cpu time.Duration
	defer func() { reportCPU(b, cpu, int64(len(signed))) }()
	for b.Loop() {
		cmd := exec.Command(tool, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
		cmd.Env = testappx.Env()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("osslsigncode verify: %v: %s", err, out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
}

// BenchmarkSign: csv signing the unsigned package (the block map checked
// against every member first), against osslsigncode sign in
// BenchmarkOsslSign.
func BenchmarkSign(b *testing.B) {
	p, unsigned, _, _ := benchSigned(b)
	b.SetBytes(int64(len(unsigned)))
	out := filepath.Join(b.TempDir(), "out.msix")
	start := cpuTime()
	defer func() { reportCPU(b, cpuTime()-start, int64(len(unsigned))) }()
	for b.Loop() {
		r := bytes.NewReader(unsigned)
		buf := make([]byte, format.SniffSize)
		n, _ := r.Read(buf)
		f := format.NewFile(r, int64(len(unsigned)), buf, n)
		f.Name = "x.msix"
		w, err := os.Create(out)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (appx.Handler{}).Sign(b.Context(), f, w, p.opts(nil)); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
}

func BenchmarkOsslSign(b *testing.B) {
	p, unsigned, _, path := benchSigned(b)
	tool := testenv.Tool(b, "osslsigncode")
	in := filepath.Join(filepath.Dir(path), "unsigned.msix")
	out := filepath.Join(b.TempDir(), "out.msix")
	b.SetBytes(int64(len(unsigned)))
	var cpu time.Duration
	defer func() { reportCPU(b, cpu, int64(len(unsigned))) }()
	for b.Loop() {
		os.Remove(out)
		cmd := exec.Command(tool, "sign", "-certs", p.files.Chain, "-key", p.files.Key, "-in", in, "-out", out)
		cmd.Env = testappx.Env()
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("osslsigncode sign: %v: %s", err, o)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
}

// reportCPU adds the MB per CPU second of a benchmark that took cpu in all
// (its own, or the peer's processes'): a shared machine disturbs it less
// than the wall clock.
func reportCPU(b *testing.B, cpu time.Duration, perOp int64) {
	if cpu > 0 {
		b.ReportMetric(float64(perOp)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
		b.ReportMetric(cpu.Seconds()*1e3/float64(b.N), "cpu-ms/op")
	}
}
