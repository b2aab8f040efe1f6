package pe_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

// benchPE is a PE the size of the benchmark corpus's Go programs: a small
// image with a 2.5 MB overlay.
func benchPE() []byte {
	return testbin.PE(testbin.PEOptions{Data: []byte("data"), Overlay: codeOf(2500000)})
}

var benchKeys = []struct {
	name string
	kt   testca.KeyType
}{{"rsa2048", testca.RSA2048}, {"rsa3072", testca.RSA3072}}

// report adds files/s (wall clock) and cpu-ms/file: on a shared machine the
// CPU time per file is the steadier figure, and 2 cores / cpu-ms/file is
// the throughput a dedicated 2-core machine reaches.
func report(b *testing.B, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "files/s")
	b.ReportMetric(float64(cpu.Microseconds())/1000/float64(b.N), "cpu-ms/file")
}

// BenchmarkSign signs a 2.5 MB PE per iteration with Sign, reading it from
// a file and writing the signed file (as csv sign does), SHA-256, with
// RSA-2048 and RSA-3072 leaves. Compare with BenchmarkOsslsigncodeSign in
// the same run:
//
//	go test -run '^$' -bench '^Benchmark(Sign|SignParallel|OsslsigncodeSign)$' -benchtime 2s -count 3 ./signing/authenticode/
func BenchmarkSign(b *testing.B) {
	in := benchPE()
	for _, k := range benchKeys {
		b.Run(k.name, func(b *testing.B) {
			p := newPKI(b)
			s := p.signer(b, testca.LeafOptions{KeyType: k.kt})
			chain := p.chainOf(s)
			dir := b.TempDir()
			inPath := filepath.Join(dir, "in.exe")
			if err := os.WriteFile(inPath, in, 0o600); err != nil {
				b.Fatal(err)
			}
			outPath := filepath.Join(dir, "out.exe")
			ctx := context.Background()
			b.SetBytes(int64(len(in)))
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for b.Loop() {
				f, err := os.Open(inPath)
				if err != nil {
					b.Fatal(err)
				}
				os.Remove(outPath) // a new file, as osslsigncode -out makes (truncating one costs more on ext4)
				out, err := os.Create(outPath)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := pe.Sign(ctx, f, int64(len(in)), out, s.leaf.Key, chain, authenticode.SignOptions{}); err != nil {
					b.Fatal(err)
				}
				f.Close()
				if err := out.Close(); err != nil {
					b.Fatal(err)
				}
			}
			report(b, cpuTime(b)-cpu0)
		})
	}
}

// BenchmarkSignParallel is BenchmarkSign with one worker per CPU
// (GOMAXPROCS), as csv sign runs: files/s is the throughput on this
// machine.
func BenchmarkSignParallel(b *testing.B) {
	in := benchPE()
	for _, k := range benchKeys {
		b.Run(k.name, func(b *testing.B) {
			p := newPKI(b)
			s := p.signer(b, testca.LeafOptions{KeyType: k.kt})
			chain := p.chainOf(s)
			dir := b.TempDir()
			inPath := filepath.Join(dir, "in.exe")
			if err := os.WriteFile(inPath, in, 0o600); err != nil {
				b.Fatal(err)
			}
			var worker atomic.Int64
			ctx := context.Background()
			b.SetBytes(int64(len(in)))
			b.ResetTimer()
			cpu0 := cpuTime(b)
			b.RunParallel(func(pb *testing.PB) {
				outPath := filepath.Join(dir, fmt.Sprintf("out%d.exe", worker.Add(1)))
				for pb.Next() {
					f, err := os.Open(inPath)
					if err != nil {
						b.Error(err)
						return
					}
					os.Remove(outPath)
					out, err := os.Create(outPath)
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := pe.Sign(ctx, f, int64(len(in)), out, s.leaf.Key, chain, authenticode.SignOptions{}); err != nil {
						b.Error(err)
					}
					f.Close()
					if err := out.Close(); err != nil {
						b.Error(err)
					}
				}
			})
			report(b, cpuTime(b)-cpu0)
		})
	}
}

// BenchmarkSignInMemory is BenchmarkSign without the file system: the
// cost of Sign itself (hashing, checksum, PKCS#7, the RSA signature).
func BenchmarkSignInMemory(b *testing.B) {
	in := benchPE()
	for _, k := range benchKeys {
		b.Run(k.name, func(b *testing.B) {
			p := newPKI(b)
			s := p.signer(b, testca.LeafOptions{KeyType: k.kt})
			chain := p.chainOf(s)
			ctx := context.Background()
			b.SetBytes(int64(len(in)))
			b.ReportAllocs()
			b.ResetTimer()
			cpu0 := cpuTime(b)
			for b.Loop() {
				var out discard
				if _, err := pe.Sign(ctx, bytes.NewReader(in), int64(len(in)), &out, s.leaf.Key, chain, authenticode.SignOptions{}); err != nil {
					b.Fatal(err)
				}
			}
			report(b, cpuTime(b)-cpu0)
		})
	}
}

// BenchmarkOsslsigncodeSign runs `osslsigncode sign -h sha256` on the same
// file with the same kind of key, one process per file as a build script
// would, for the ratio to BenchmarkSign. It skips where osslsigncode is
// absent.
func BenchmarkOsslsigncodeSign(b *testing.B) {
	in := benchPE()
	for _, k := range benchKeys {
		b.Run(k.name, func(b *testing.B) {
			ossl := testenv.Tool(b, "osslsigncode")
			p := newPKI(b)
			s := p.signer(b, testca.LeafOptions{KeyType: k.kt})
			dir := b.TempDir()
			inPath, outPath := filepath.Join(dir, "in.exe"), filepath.Join(dir, "out.exe")
			if err := os.WriteFile(inPath, in, 0o600); err != nil {
				b.Fatal(err)
			}
			env := osslEnv()
			b.SetBytes(int64(len(in)))
			var cpu time.Duration // the children's
			b.ResetTimer()
			for b.Loop() {
				os.Remove(outPath)
				cmd := exec.Command(ossl, "sign", "-certs", s.files.Chain, "-key", s.files.Key, "-h", "sha256", "-in", inPath, "-out", outPath)
				cmd.Env = env
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("osslsigncode: %v\n%s", err, out)
				}
				cpu += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
			}
			report(b, cpu)
		})
	}
}
