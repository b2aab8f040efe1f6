package cab_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/codesignval/csv/cipolicy"
	"github.com/codesignval/csv/csv/format"
	"github.com/codesignval/csv/csv/format/cab"
	"github.com/codesignval/csv/csv/format/formattest"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing/authenticode"
)

// benchSigned is a 48 MiB MSZIP cabinet (gcab, 24 files of 2 MiB) signed
// by osslsigncode.
func benchSigned(b *testing.B) (*pki, []byte, string) {
	p, data, dir := benchUnsigned(b)
	signed, ok, _, out := p.ossl(b, data, "sign")
	if !ok {
		b.Fatalf("osslsigncode: %s", out)
	}
	path := filepath.Join(dir, "signed.cab")
	if err := os.WriteFile(path, signed, 0o644); err != nil {
		b.Fatal(err)
	}
	return p, signed, path
}

// benchUnsigned is benchSigned's cabinet as gcab writes it, and the
// directory it is in (bench.cab).
func benchUnsigned(b *testing.B) (*pki, []byte, string) {
	tool := testenv.Tool(b, "gcab")
	p := newPKI(b)
	dir := b.TempDir()
	args := []string{"-c", "-z", "bench.cab"}
	for i := range 24 {
		name := fmt.Sprintf("x%02d.dll", i)
		// Two thirds random, a third zero runs: about 1.4:1 in MSZIP.
		buf := make([]byte, 2<<20)
		r := rand.New(rand.NewPCG(uint64(i), 7))
		for j := 0; j < len(buf); j += 96 {
			for k := j; k < min(j+64, len(buf)); k++ {
				buf[k] = byte(r.Uint32())
			}
		}
		if err := os.WriteFile(filepath.Join(dir, name), buf, 0o644); err != nil {
			b.Fatal(err)
		}
		args = append(args, name)
	}
	cmd := exec.Command(tool, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("gcab: %v: %s", err, out)
	}
	data, err := os.ReadFile(filepath.Join(dir, "bench.cab"))
	if err != nil {
		b.Fatal(err)
	}
	return p, data, dir
}

// BenchmarkVerify: csv's inspection of the signed cabinet (its header, its
// Authenticode SHA256 and SHA1, the signature verified), against
// osslsigncode verify on the same file in BenchmarkOsslVerify. The
// cabinet's members are not walked in either.
func BenchmarkVerify(b *testing.B) {
	p, signed, _ := benchSigned(b)
	b.SetBytes(int64(len(signed)))
	need := cipolicy.Needs{Signatures: true}
	start := cpuTime()
	for b.Loop() {
		res := formattest.Inspect(cab.Handler{}, signed, need, p.certs)
		if res.Err != nil || len(res.Facts.Signatures) != 1 || !res.Facts.Signatures[0].Verified() {
			b.Fatalf("%v %+v", res.Err, res.Facts.Signatures)
		}
	}
	reportCPU(b, cpuTime()-start, int64(len(signed)))
	b.ReportMetric(float64(len(signed))/1e6, "cab-MB")
}

func BenchmarkOsslVerify(b *testing.B) {
	p, signed, path := benchSigned(b)
	tool := testenv.Tool(b, "osslsigncode")
	b.SetBytes(int64(len(signed)))
	var cpu time.Duration
	for b.Loop() {
		cmd := exec.Command(tool, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
		cmd.Env = osslEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("osslsigncode verify: %v: %s", err, out)
		}
		cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	reportCPU(b, cpu, int64(len(signed)))
}

// reportCPU adds the MB per CPU second of a benchmark that took cpu in all
// (its own, or the peer's processes').
func reportCPU(b *testing.B, cpu time.Duration, perOp int64) {
	if cpu > 0 {
		b.ReportMetric(float64(perOp)*float64(b.N)/cpu.Seconds()/1e6, "MB/cpu-s")
	}
}

// inspectFile is csv's inspection of the cabinet at path as the pipeline
// does it: the file opened, its first block read, the handler's Inspect,
// the one read that feeds the digests (format.File.Stream, reading ahead),
// the signature verified.
func inspectFile(b *testing.B, p *pki, path string, buf []byte) {
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		b.Fatal(err)
	}
	n, err := io.ReadFull(f, buf[:min(int64(format.SniffSize), st.Size())])
	if err != nil {
		b.Fatal(err)
	}
	file := format.NewFile(f, st.Size(), buf, n)
	var pass format.Pass
	var facts format.Facts
	opts := &format.InspectOptions{Certificates: p.certs, Cache: authenticode.NewCertCache()}
	finish, err := cab.Handler{}.Inspect(file, cipolicy.Needs{Signatures: true}, opts, &pass, &facts)
	if err != nil {
		b.Fatal(err)
	}
	if err := file.Stream(context.Background(), pass.Writers()...); err != nil {
		b.Fatal(err)
	}
	if _, err := pass.Done(); err != nil {
		b.Fatal(err)
	}
	if err := finish(); err != nil || len(facts.Signatures) != 1 || !facts.Signatures[0].Verified() {
		b.Fatalf("%v %+v", err, facts.Signatures)
	}
}

// BenchmarkVerifyInterleaved verifies the signed cabinet from its file
// with csv and with osslsigncode verify by turns, in each iteration, so
// that both meet the same load on a shared machine; it reports each one's
// wall-clock milliseconds per file (csv-ms, ossl-ms) and the ratio
// (ossl/csv: above 1, csv is faster).
func BenchmarkVerifyInterleaved(b *testing.B) {
	p, _, path := benchSigned(b)
	tool := testenv.Tool(b, "osslsigncode")
	buf := make([]byte, 64<<10)
	var csvT, osslT time.Duration
	for b.Loop() {
		t0 := time.Now()
		inspectFile(b, p, path, buf)
		t1 := time.Now()
		cmd := exec.Command(tool, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
		cmd.Env = osslEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("osslsigncode verify: %v: %s", err, out)
		}
		csvT, osslT = csvT+t1.Sub(t0), osslT+time.Since(t1)
	}
	b.ReportMetric(float64(csvT.Milliseconds())/float64(b.N), "csv-ms")
	b.ReportMetric(float64(osslT.Milliseconds())/float64(b.N), "ossl-ms")
	b.ReportMetric(osslT.Seconds()/csvT.Seconds(), "ossl/csv")
}

// BenchmarkSignInterleaved signs the 48 MiB MSZIP cabinet of benchUnsigned
// from its file into a new file, with csv (the handler's Sign, as
// csv sign runs it) and with osslsigncode sign by turns in each iteration,
// so that both meet the same load; it reports each one's wall-clock
// milliseconds per file and the ratio (ossl/csv: above 1, csv is faster).
func BenchmarkSignInterleaved(b *testing.B) {
	p, unsigned, dir := benchUnsigned(b)
	in := filepath.Join(dir, "bench.cab")
	tool := testenv.Tool(b, "osslsigncode")
	buf := make([]byte, 64<<10)
	opts := p.opts(nil, false)
	var csvT, osslT time.Duration
	for b.Loop() {
		t0 := time.Now()
		f, err := os.Open(in)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.ReadFull(f, buf[:format.SniffSize])
		out, err := os.Create(filepath.Join(dir, "csv.cab"))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := (cab.Handler{}).Sign(context.Background(), format.NewFile(f, int64(len(unsigned)), buf, n), out, opts); err != nil {
			b.Fatal(err)
		}
		out.Close()
		f.Close()
		t1 := time.Now()
		os.Remove(filepath.Join(dir, "ossl.cab"))
		cmd := exec.Command(tool, "sign", "-certs", p.files.Chain, "-key", p.files.Key, "-in", in, "-out", filepath.Join(dir, "ossl.cab"))
		cmd.Env = osslEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("osslsigncode sign: %v: %s", err, out)
		}
		csvT, osslT = csvT+t1.Sub(t0), osslT+time.Since(t1)
	}
	b.ReportMetric(float64(csvT.Milliseconds())/float64(b.N), "csv-ms")
	b.ReportMetric(float64(osslT.Milliseconds())/float64(b.N), "ossl-ms")
	b.ReportMetric(osslT.Seconds()/csvT.Seconds(), "ossl/csv")
}
