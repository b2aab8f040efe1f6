package pe_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"

	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

// pageInputs are unsigned PE files to hash the pages of: generated ones
// (one section, two, 32-bit, several pages per section) and, where the
// shared test data is present, real ones.
func pageInputs(t *testing.T) map[string][]byte {
	t.Helper()
	big := make([]byte, 3*pe.PageSize+123)
	rand.Read(big)
	in := map[string][]byte{
		"one section":   testbin.PE(testbin.PEOptions{}),
		"two sections":  testbin.PE(testbin.PEOptions{Data: []byte("some data")}),
		"pe32":          testbin.PE(testbin.PEOptions{PE32: true, Data: big}),
		"several pages": testbin.PE(testbin.PEOptions{Code: big[:2*pe.PageSize], Data: big}),
		"with overlay":  testbin.PE(testbin.PEOptions{Data: big[:100], Overlay: []byte("overlay")}),
	}
	dir := testenv.Shared(t, "testdata/pe")
	// Real files: unsigned, signed (its signature replaced), UEFI images.
	for _, name := range []string{"uthenticode/32-pegoat.exe", "uthenticode/64-pegoat-authenticode.exe", "authenticode-rs/tiny64.efi", "authenticode-rs/tiny32.efi"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		in[name] = b
	}
	return in
}

// signaturePageHashes returns the page-hash tables of the first signature
// of a signed PE file.
func signaturePageHashes(t *testing.T, data []byte) []pe.PageHashTable {
	t.Helper()
	s := parseSignedPE(t, data)
	table, err := pe.ParseTable(s.table, s.pf.CertTable.Off)
	if err != nil {
		t.Fatal(err)
	}
	st := table.Signatures()[0]
	p, err := authenticode.Parse(st.DER, st.DEROffset, st.ZeroPadding)
	if err != nil {
		t.Fatal(err)
	}
	pts, err := pe.PageHashTables(p.Data)
	if err != nil {
		t.Fatal(err)
	}
	return pts
}

// pageHashes computes the first-page hash and the page-hash table of data
// with h.
func pageHashes(t testing.TB, data []byte, h crypto.Hash) (first, table []byte) {
	t.Helper()
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	pages := pe.NewPages(pf)
	fd, td := pages.FirstPage(h), pages.Table(h, true)
	for _, d := range []*pe.PageDigester{fd, td} {
		// Odd chunks: pages and header fields split across writes.
		for b := data; len(b) > 0; {
			n := min(len(b), 1000)
			if _, err := d.Write(b[:n]); err != nil {
				t.Fatal(err)
			}
			b = b[n:]
		}
		if err := d.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := pages.TableProblem(); err != nil {
		t.Fatal(err)
	}
	return fd.FirstPageHash(), td.Table()
}

// TestPageHashesMatchOsslsigncode: the page-hash table csv computes, of the
// file osslsigncode signed and of the file before, is the table
// osslsigncode -ph wrote in the signature, with SHA1 and SHA256; the
// first-page hash (what WDAC's Hash Page rules compare) is its first entry.
func TestPageHashesMatchOsslsigncode(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	for name, in := range pageInputs(t) {
		for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
			t.Run(name+"/"+h.String(), func(t *testing.T) {
				out := osslSign(t, in, s, "-ph", "-h", map[crypto.Hash]string{crypto.SHA1: "sha1", crypto.SHA256: "sha256"}[h])
				pts := signaturePageHashes(t, out)
				if len(pts) != 1 || pts[0].Hash != h {
					t.Fatalf("osslsigncode wrote %d page-hash tables (%v), want one of %v", len(pts), pts, h)
				}
				want := pts[0].Table
				for _, data := range [][]byte{in, out} {
					first, table := pageHashes(t, data, h)
					if !bytes.Equal(table, want) {
						t.Errorf("page-hash table:\n got %x\nwant %x", table, want)
					}
					if !bytes.Equal(first, want[4:4+h.Size()]) || !bytes.Equal(want[:4], []byte{0, 0, 0, 0}) {
						t.Errorf("first-page hash %x, the table's first entry %x", first, want[:4+h.Size()])
					}
				}
				// csv verifies what osslsigncode signed, the table checked.
				sig := verifyPages(t, out, p)
				if !sig.Verified() {
					t.Errorf("csv does not verify osslsigncode's signature with page hashes: %v", sig.Problem)
				}
			})
		}
	}
}

// verifyPages verifies the first signature of data with its page-hash
// tables checked in one pass, as csv's PE handler does.
func verifyPages(t *testing.T, data []byte, p *pki) *signing.Signature {
	t.Helper()
	s := parseSignedPE(t, data)
	pages := pe.NewPages(s.pf)
	exp := pe.ExpectedPageHashes(s.table)
	var ws []interface {
		Write([]byte) (int, error)
		Close() error
	}
	for _, h := range []crypto.Hash{crypto.SHA1, crypto.SHA256} {
		var mine []*pe.Expected
		for _, e := range exp {
			if e.Hash == h {
				mine = append(mine, e)
			}
		}
		if len(mine) > 0 {
			ws = append(ws, pages.Table(h, false, mine...))
		}
	}
	for _, w := range ws {
		w.Write(data)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	digests := map[crypto.Hash][]byte{crypto.SHA1: s.digest(t, crypto.SHA1), crypto.SHA256: s.digest(t, crypto.SHA256)}
	sigs, err := pe.VerifyPages(s.table, s.pf.CertTable.Off, digests, exp, authenticode.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return sigs[0]
}

// TestSignPageHashes: a signature csv makes with page hashes carries the
// table osslsigncode computes, osslsigncode verify accepts it (checking
// the page hashes) and csv verifies it; a changed byte in a page makes
// both refuse the file.
func TestSignPageHashes(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	signer, err := authenticode.NewSigner(s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range pageInputs(t) {
		t.Run(name, func(t *testing.T) {
			out := signWithPages(t, signer, in, nil)
			pts := signaturePageHashes(t, out)
			_, want := pageHashes(t, in, crypto.SHA256)
			if len(pts) != 1 || pts[0].Hash != crypto.SHA256 || !bytes.Equal(pts[0].Table, want) {
				t.Fatalf("the signature's page hashes %v, want the SHA256 table %x", pts, want)
			}
			ok, msg := osslVerifies(t, out, p.rootPEM)
			if !ok {
				t.Fatalf("osslsigncode refuses csv's signature with page hashes:\n%s", msg)
			}
			if !bytes.Contains([]byte(msg), []byte("Page hash algorithm")) {
				t.Errorf("osslsigncode did not check page hashes:\n%s", msg)
			}
			if sig := verifyPages(t, out, p); !sig.Verified() {
				t.Fatalf("csv does not verify its own signature with page hashes: %v", sig.Problem)
			}
			// A changed byte in the last section's last page.
			pf, _ := binpe.Parse(bytes.NewReader(out), int64(len(out)))
			last := pf.Sections[len(pf.Sections)-1]
			bad := bytes.Clone(out)
			bad[last.PointerToRawData+last.SizeOfRawData-1] ^= 1
			if ok, msg := osslVerifies(t, bad, p.rootPEM); ok {
				t.Errorf("osslsigncode accepts a changed page:\n%s", msg)
			}
			if sig := verifyPages(t, bad, p); sig.Verified() || !errors.Is(sig.Problem, pe.ErrPageHashes) && !errors.Is(sig.Problem, signing.ErrDigestMismatch) {
				t.Errorf("csv: a changed page: verified %v, problem %v", sig.Verified(), sig.Problem)
			}
		})
	}
}

func signWithPages(t *testing.T, signer *authenticode.Signer, in []byte, mutate func([]byte)) []byte {
	t.Helper()
	var out bytes.Buffer
	w := &writerAt{&out}
	var err error
	if mutate != nil {
		_, err = pe.SignLyingPages(context.Background(), signer, bytes.NewReader(in), int64(len(in)), w, mutate)
	} else {
		_, err = pe.SignWithOptions(context.Background(), signer, bytes.NewReader(in), int64(len(in)), w, pe.Options{PageHashes: true})
	}
	if err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// writerAt is a bytes.Buffer that takes WriteAt patches.
type writerAt struct{ b *bytes.Buffer }

func (w *writerAt) Write(p []byte) (int, error) { return w.b.Write(p) }
func (w *writerAt) WriteAt(p []byte, off int64) (int, error) {
	copy(w.b.Bytes()[off:], p)
	return len(p), nil
}

// TestLyingPageTable: a signature whose image digest is right but whose
// page-hash table does not match the file (Windows, which checks pages
// as they load, would refuse the file) does not verify in csv, with the
// page-hash problem, and osslsigncode refuses it too; a verifier that did
// not check the table (pe.Verify) does not count the signature either.
func TestLyingPageTable(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, testca.LeafOptions{})
	signer, err := authenticode.NewSigner(s.leaf.Key, p.chainOf(s), authenticode.SignOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in := testbin.PE(testbin.PEOptions{Data: make([]byte, 2*pe.PageSize)})
	for name, mutate := range map[string]func([]byte){
		"headers page": func(b []byte) { b[4] ^= 1 },
		"last page":    func(b []byte) { b[len(b)-36-1] ^= 1 },
		"end offset":   func(b []byte) { b[len(b)-36] ^= 1 },
	} {
		t.Run(name, func(t *testing.T) {
			out := signWithPages(t, signer, in, mutate)
			sig := verifyPages(t, out, p)
			if sig.Verified() || !errors.Is(sig.Problem, pe.ErrPageHashes) {
				t.Errorf("a lying page-hash table: verified %v, problem %v (want ErrPageHashes)", sig.Verified(), sig.Problem)
			}
			if ok, msg := osslVerifies(t, out, p.rootPEM); ok {
				t.Errorf("osslsigncode accepts a lying page-hash table:\n%s", msg)
			}
			sp := parseSignedPE(t, out)
			sigs, err := pe.Verify(sp.table, sp.pf.CertTable.Off, map[crypto.Hash][]byte{crypto.SHA256: sp.digest(t, crypto.SHA256)}, authenticode.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if sigs[0].Verified() || !errors.Is(sigs[0].Problem, signing.ErrDigestNotComputed) {
				t.Errorf("pe.Verify of a signature with page hashes it did not check: verified %v, problem %v", sigs[0].Verified(), sigs[0].Problem)
			}
		})
	}
}

// FuzzPageHashes: whatever the file and the table a signature claims, the
// page digesters never panic, write past nothing, and a claimed table
// matches exactly when it is the table computed.
func FuzzPageHashes(f *testing.F) {
	big := make([]byte, 2*pe.PageSize+7)
	for i := range big {
		big[i] = byte(i)
	}
	for _, in := range [][]byte{
		testbin.PE(testbin.PEOptions{}),
		testbin.PE(testbin.PEOptions{PE32: true, Data: big}),
		testbin.PE(testbin.PEOptions{Code: big, Overlay: []byte("overlay")}),
	} {
		_, table := pageHashes(f, in, crypto.SHA256)
		f.Add(in, table)
		f.Add(in, table[:len(table)-1])
		f.Add(in[:len(in)-100], table)
	}
	f.Fuzz(func(t *testing.T, data, claimed []byte) {
		pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
		if err != nil {
			return
		}
		pages := pe.NewPages(pf)
		want := &pe.Expected{Hash: crypto.SHA256, Table: claimed}
		td := pages.Table(crypto.SHA256, true, want)
		fd := pages.FirstPage(crypto.SHA1)
		for b := data; len(b) > 0; {
			n := min(len(b), 777)
			for _, d := range []*pe.PageDigester{td, fd} {
				if _, err := d.Write(b[:n]); err != nil {
					t.Fatal(err)
				}
			}
			b = b[n:]
		}
		for _, d := range []*pe.PageDigester{td, fd} {
			if err := d.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if (fd.FirstPageHash() == nil) != (pages.FirstPageProblem() != nil) {
			t.Fatalf("first page %x, problem %v", fd.FirstPageHash(), pages.FirstPageProblem())
		}
		if pages.TableProblem() != nil {
			if want.Problem == nil || td.Table() != nil {
				t.Fatalf("table problem %v, but the claim is %v", pages.TableProblem(), want.Problem)
			}
			return
		}
		got := td.Table()
		if int64(len(got)) != pages.TableSize(crypto.SHA256) || !bytes.Equal(got[4:36], func() []byte { d := pages.FirstPage(crypto.SHA256); d.Write(data); d.Close(); return d.FirstPageHash() }()) {
			t.Fatalf("table of %d bytes (size %d)", len(got), pages.TableSize(crypto.SHA256))
		}
		if (want.Problem == nil) != bytes.Equal(got, claimed) {
			t.Fatalf("claimed table matches: %v, equal: %v", want.Problem == nil, bytes.Equal(got, claimed))
		}
	})
}

// FuzzPageHashTables: reading the page hashes of any SpcPeImageData never
// panics, and what it returns lies within it.
func FuzzPageHashTables(f *testing.F) {
	p := newPKI(f)
	s := p.signer(f, testca.LeafOptions{})
	for _, h := range []string{"sha1", "sha256"} {
		out := osslSign(f, testbin.PE(testbin.PEOptions{}), s, "-ph", "-h", h)
		sp := parseSignedPE(f, out)
		table, err := pe.ParseTable(sp.table, 0)
		if err != nil {
			f.Fatal(err)
		}
		st := table.Signatures()[0]
		parsed, err := authenticode.Parse(st.DER, 0, true)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(parsed.Data.Value)
	}
	f.Add([]byte{0x30, 0x00})
	f.Fuzz(func(t *testing.T, value []byte) {
		pts, err := pe.PageHashTables(authenticode.IndirectData{Type: pe.OIDSpcPEImageData, Value: value})
		if err != nil && (pts != nil || !errors.Is(err, pe.ErrPageHashes)) {
			t.Fatalf("%d tables and error %v", len(pts), err)
		}
		total := 0
		for _, pt := range pts {
			total += len(pt.Table)
			if pt.Hash != crypto.SHA1 && pt.Hash != crypto.SHA256 {
				t.Fatalf("hash %v", pt.Hash)
			}
		}
		if total > len(value) {
			t.Fatalf("%d table bytes from %d", total, len(value))
		}
	})
}

// BenchmarkPageHashes measures what page hashes add to the one read of a
// PE file whose 8 MB are section data: the image hash alone (what a
// signature without page hashes costs), with the first-page hashes (what a
// page-hash rule costs: 4 KiB), and with the SHA256 page-hash table
// checked (what a signature with page hashes costs: a second hash of the
// sections):
//
//	go test -run '^$' -bench BenchmarkPageHashes -benchtime 2s -count 3 ./signing/authenticode/pe/
func BenchmarkPageHashes(b *testing.B) {
	data := testbin.PE(testbin.PEOptions{Code: codeOf(8 << 20)})
	pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		b.Fatal(err)
	}
	_, table := pageHashes(b, data, crypto.SHA256)
	im := imageOf(pf)
	for _, bc := range []struct {
		name         string
		first, table bool
	}{{"image", false, false}, {"image+first-page", true, false}, {"image+table", false, true}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				h := crypto.SHA256.New()
				ws := []interface {
					Write([]byte) (int, error)
					Close() error
				}{im.NewDigester(h)}
				pages := pe.NewPages(pf)
				if bc.first {
					ws = append(ws, pages.FirstPage(crypto.SHA256), pages.FirstPage(crypto.SHA1))
				}
				want := &pe.Expected{Hash: crypto.SHA256, Table: table}
				if bc.table {
					ws = append(ws, pages.Table(crypto.SHA256, false, want))
				}
				for off := 0; off < len(data); off += 256 << 10 {
					chunk := data[off:min(off+256<<10, len(data))]
					for _, w := range ws {
						w.Write(chunk)
					}
				}
				for _, w := range ws {
					if err := w.Close(); err != nil {
						b.Fatal(err)
					}
				}
				if bc.table && want.Problem != nil {
					b.Fatal(want.Problem)
				}
			}
		})
	}
}
