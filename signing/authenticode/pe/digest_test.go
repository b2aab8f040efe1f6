package pe_test

import (
	"bytes"
	"crypto"
	_ "crypto/sha1"
	_ "crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

// osslDigest is one signature's digest as osslsigncode reports it.
type osslDigest struct {
	alg        crypto.Hash
	current    string // the digest in the signature
	calculated string // the digest osslsigncode computed of the file
}

var (
	reAlg  = regexp.MustCompile(`(?m)^Message digest algorithm\s+:\s+(\S+)`)
	reCur  = regexp.MustCompile(`(?m)^Current message digest\s+:\s+([0-9A-F]+)`)
	reCalc = regexp.MustCompile(`(?m)^Calculated message digest\s+:\s+([0-9A-F]+)`)
)

// osslVerify runs osslsigncode verify and returns the digests it printed,
// one per signature (outer first, then nested ones).
func osslVerify(t *testing.T, ossl, path string) []osslDigest {
	t.Helper()
	out, _ := exec.Command(ossl, "verify", "-in", path).CombinedOutput() // fails on untrusted chains; digests are printed anyway
	algs, curs, calcs := reAlg.FindAllStringSubmatch(string(out), -1), reCur.FindAllStringSubmatch(string(out), -1), reCalc.FindAllStringSubmatch(string(out), -1)
	if len(algs) == 0 || len(algs) != len(curs) || len(algs) != len(calcs) {
		t.Fatalf("osslsigncode verify %s: cannot read its digests from:\n%s", path, out)
	}
	var ds []osslDigest
	for i := range algs {
		h := map[string]crypto.Hash{"SHA1": crypto.SHA1, "SHA256": crypto.SHA256}[algs[i][1]]
		if h == 0 {
			t.Fatalf("osslsigncode reports unexpected algorithm %q", algs[i][1])
		}
		ds = append(ds, osslDigest{h, strings.ToLower(curs[i][1]), strings.ToLower(calcs[i][1])})
	}
	return ds
}

func digestFile(t *testing.T, path string, h crypto.Hash) string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	pf, err := binpe.Parse(f, st.Size())
	if err != nil {
		t.Fatalf("parse %s: %v", path, err)
	}
	d, err := imageOf(pf).Digest(f, h)
	if err != nil {
		t.Fatalf("digest %s: %v", path, err)
	}
	return hex.EncodeToString(d)
}

// TestDigestMatchesOsslsigncodeOnRealFiles compares the image hash with what
// osslsigncode computes for every signed third-party file.
func TestDigestMatchesOsslsigncodeOnRealFiles(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	dir := testenv.Shared(t, "testdata/pe")
	files, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	checked := 0
	for _, path := range files {
		if strings.HasSuffix(path, ".pem") || strings.HasSuffix(path, ".md") {
			continue
		}
		name := filepath.Base(path)
		if name == "32-pegoat-authenticode_duplicated.exe" {
			continue // osslsigncode cannot read two entries; see the next test
		}
		if !bytes.Contains(run(t, ossl, "verify", "-in", path), []byte("message digest")) {
			continue // unsigned: TestDigestOfUnsignedMatchesWhatOsslsigncodeSigns covers these
		}
		t.Run(name, func(t *testing.T) {
			for _, d := range osslVerify(t, ossl, path) {
				if got := digestFile(t, path, d.alg); got != d.calculated {
					t.Errorf("%v image hash = %s, osslsigncode calculated %s", d.alg, got, d.calculated)
				}
			}
		})
		checked++
	}
	if checked < 6 {
		t.Fatalf("only %d signed files checked in %s", checked, dir)
	}
}

func run(t *testing.T, name string, args ...string) []byte {
	t.Helper()
	out, _ := exec.Command(name, args...).CombinedOutput()
	return out
}

// TestDigestOfDuplicatedEntries checks the file whose table holds two
// WIN_CERTIFICATE entries (osslsigncode refuses it) against the digest its
// source publishes, and that both entries are read.
func TestDigestOfDuplicatedEntries(t *testing.T) {
	path := filepath.Join(testenv.Shared(t, "testdata/pe"), "uthenticode", "32-pegoat-authenticode_duplicated.exe")
	if got, want := digestFile(t, path, crypto.SHA1), "6663dd7c24fa84fce7f16e0b02689952c06cfa22"; got != want {
		t.Errorf("SHA1 image hash = %s, want %s (uthenticode's test value)", got, want)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	certs, err := binpe.ParseCertificateTable(data[pf.CertTable.Off:pf.CertTable.End()], pf.CertTable.Off)
	if err != nil {
		t.Fatal(err)
	}
	if len(certs) != 2 {
		t.Fatalf("%d certificate entries, want 2", len(certs))
	}
	if !bytes.Equal(certs[0].Data, certs[1].Data) {
		t.Error("the two entries differ; the file duplicates one signature")
	}
}

// TestDigestOfUnsignedMatchesWhatOsslsigncodeSigns signs unsigned files with
// osslsigncode and checks that the digest it puts into the signature (of the
// unsigned file, padded to 8 bytes) is the digest of the unsigned file, and
// that the signed file's digest is the same: a hash rule written before
// signing still matches after.
func TestDigestOfUnsignedMatchesWhatOsslsigncodeSigns(t *testing.T) {
	ossl := testenv.Tool(t, "osslsigncode")
	tmp := t.TempDir()
	ca := testca.New(t)
	files := ca.WriteFiles(t, tmp, ca.Leaf(t, testca.LeafOptions{}))

	inputs := map[string][]byte{
		"pe32plus.exe":     testbin.PE(testbin.PEOptions{}),
		"pe32.exe":         testbin.PE(testbin.PEOptions{PE32: true, Data: []byte("data")}),
		"odd-overlay.exe":  testbin.PE(testbin.PEOptions{Overlay: []byte("123")}), // not a multiple of 8: padded
		"pe32-overlay.exe": testbin.PE(testbin.PEOptions{PE32: true, Overlay: bytes.Repeat([]byte{0xaa}, 4097)}),
		"no-checksum.exe":  testbin.PE(testbin.PEOptions{NoChecksum: true, Overlay: []byte{1}}),
	}
	if dir := filepath.Join(testenv.RepoRoot(t), "..", "shared", "testdata", "pe"); dirExists(dir) {
		for _, rel := range []string{"uthenticode/32-pegoat.exe", "authenticode-rs/tiny32.efi", "authenticode-rs/tiny64.efi"} {
			data, err := os.ReadFile(filepath.Join(dir, rel))
			if err != nil {
				t.Fatal(err)
			}
			inputs[filepath.Base(rel)] = data
		}
	}
	for name, data := range inputs {
		t.Run(name, func(t *testing.T) {
			in := filepath.Join(tmp, name)
			if err := os.WriteFile(in, data, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, h := range []crypto.Hash{crypto.SHA256, crypto.SHA1} {
				hname := map[crypto.Hash]string{crypto.SHA256: "sha256", crypto.SHA1: "sha1"}[h]
				out := filepath.Join(tmp, hname+"-signed-"+name)
				if b, err := exec.Command(ossl, "sign", "-certs", files.Chain, "-key", files.Key, "-h", hname,
					"-in", in, "-out", out).CombinedOutput(); err != nil {
					t.Fatalf("osslsigncode sign: %v\n%s", err, b)
				}
				ds := osslVerify(t, ossl, out)
				if len(ds) != 1 || ds[0].alg != h {
					t.Fatalf("osslsigncode reports %+v, want one %v signature", ds, h)
				}
				if got := digestFile(t, in, h); got != ds[0].current {
					t.Errorf("%v digest of the unsigned file = %s, the signature carries %s", h, got, ds[0].current)
				}
				if got := digestFile(t, out, h); got != ds[0].calculated {
					t.Errorf("%v digest of the signed file = %s, osslsigncode calculated %s", h, got, ds[0].calculated)
				}
			}
		})
	}
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

// TestDigesterStreamsInAnyChunking checks that the Digester gives the same
// hash however the file is split into writes, and refuses short input.
func TestDigesterStreamsInAnyChunking(t *testing.T) {
	data := testbin.PE(testbin.PEOptions{Overlay: bytes.Repeat([]byte("x"), 1001)})
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	want, err := imageOf(pf).Digest(bytes.NewReader(data), crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	for _, chunk := range []int{1, 3, 7, 64, 333, len(data)} {
		h := crypto.SHA256.New()
		d := imageOf(pf).NewDigester(h)
		for off := 0; off < len(data); off += chunk {
			if _, err := d.Write(data[off:min(off+chunk, len(data))]); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
		if got := h.Sum(nil); !bytes.Equal(got, want) {
			t.Errorf("chunk %d: %x, want %x", chunk, got, want)
		}
	}
	d := imageOf(pf).NewDigester(crypto.SHA256.New())
	if _, err := d.Write(data[:len(data)-1]); err != nil {
		t.Fatal(err)
	}
	if err := d.Close(); err == nil {
		t.Error("Close after a short write succeeded")
	}
	if _, err := imageOf(pf).NewDigester().Write(append(data, 0)); err == nil {
		t.Error("writing past the end of the file succeeded")
	}
}

// TestDigestChangesWithCoveredBytesOnly flips each byte of a small PE and
// checks the hash changes exactly when the byte is covered: everything but
// the CheckSum field and the certificate table directory entry.
func TestDigestChangesWithCoveredBytesOnly(t *testing.T) {
	data := testbin.PE(testbin.PEOptions{PE32: true, Overlay: []byte("tail")})
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	base, _ := imageOf(pf).Digest(bytes.NewReader(data), crypto.SHA256)
	for i := range data {
		mod := bytes.Clone(data)
		mod[i] ^= 0xff
		got, err := imageOf(pf).Digest(bytes.NewReader(mod), crypto.SHA256)
		if err != nil {
			t.Fatal(err)
		}
		excluded := (int64(i) >= pf.CheckSumOffset && int64(i) < pf.CheckSumOffset+4) ||
			(int64(i) >= pf.CertDirOffset && int64(i) < pf.CertDirOffset+8)
		if changed := !bytes.Equal(got, base); changed == excluded {
			t.Fatalf("byte %#x: digest changed=%v, but excluded=%v", i, changed, excluded)
		}
	}
}

// imageOf is the Authenticode layout of a parsed PE file.
func imageOf(f *binpe.File) *pe.Image {
	im, err := pe.NewImage(pe.Layout{Size: f.Size, CheckSumOffset: f.CheckSumOffset, CertDirOffset: f.CertDirOffset,
		CertTableOffset: f.CertTable.Off, CertTableSize: f.CertTable.Len})
	if err != nil {
		panic(err)
	}
	return im
}
