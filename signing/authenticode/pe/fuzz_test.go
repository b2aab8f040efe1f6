package pe_test

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
	"github.com/codesignval/csv/signing/timestamp/tsahttp"
)

// FuzzVerify feeds certificate tables (or signatures, wrapped in a table) to
// Verify and DigestAlgorithms. Seeds:
// the tables of the real signed files in ../shared/testdata/pe and of Debian's
// shim and GRUB where present, and of PE files freshly signed with
// osslsigncode (plain, ECDSA, nested, RFC 3161 and legacy timestamps) where it
// is installed, plus the hostile shapes Verify refuses (a second entry of
// junk, an X509 entry, data in an unknown unsigned attribute, in the
// certificate set or in a time-stamp token's unsigned attributes).
// Invariants: no panic (a recovered one is ErrInternal, which fails too);
// Verify fails exactly when CheckTable does (with the same error), or with
// ErrTooManyChainChecks (a cap on chain building, which CheckTable does not
// do), always when binpe.ParseCertificateTable does, and then returns nothing; every signature has Format "authenticode"; Verified implies no
// Problem and a chain; with no digests nothing is Verified; with the digests
// the signatures carry, the same signatures are found, and every verified
// one's algorithm is among DigestAlgorithms (which finds nothing in a table
// that cannot be split).
//
// Run it with a bounded minimization, or the engine spends its time
// minimizing each new multi-kilobyte input instead of fuzzing:
//
//	go test -run='^$' -fuzz=FuzzVerify -fuzztime=60s -fuzzminimizetime=200x ./signing/authenticode
func FuzzVerify(f *testing.F) {
	// Each seed goes in twice: as a whole table (raw), and as the PKCS#7
	// of each entry, which the harness wraps in a well-formed table, so
	// that mutations reach the signature instead of breaking dwLength.
	for _, table := range fuzzSeeds(f) {
		f.Add(table, true)
		if entries, err := binpe.ParseCertificateTable(table, 0); err == nil {
			for _, e := range entries {
				f.Add(bytes.Clone(e.Data), false)
			}
		}
	}
	f.Add([]byte{0x30, 0x03, 0x06, 0x01, 0x00}, false)
	f.Add(makeTable(tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypeX509, data: []byte{1, 2, 3}}), true)
	for _, seed := range hostileSeeds(f) {
		f.Add(seed.data, seed.raw)
	}
	cache := authenticode.NewCertCache()
	f.Fuzz(func(t *testing.T, data []byte, raw bool) {
		table := data
		if !raw {
			table = makeTable(pkcs7Entry(data))
		}
		_, splitErr := binpe.ParseCertificateTable(table, 0)
		checkErr := pe.CheckTable(table, 0, cache)
		opts := authenticode.VerifyOptions{Cache: cache}
		sigs, err := pe.Verify(table, 0, nil, opts)
		if checkErr == nil && errors.Is(err, authenticode.ErrTooManyChainChecks) {
			return // a cap on verifying, which CheckTable does not do
		}
		if (err != nil) != (checkErr != nil) || (err != nil && err.Error() != checkErr.Error()) || (splitErr != nil && err == nil) {
			t.Fatalf("Verify error %v, CheckTable error %v, ParseCertificateTable error %v", err, checkErr, splitErr)
		}
		if errors.Is(err, authenticode.ErrInternal) {
			t.Fatalf("recovered panic: %v", err)
		}
		algs := pe.DigestAlgorithms(table)
		if err != nil {
			if sigs != nil || (splitErr != nil && algs != nil) {
				t.Fatalf("Verify failed (%v) but returned %d signatures; DigestAlgorithms %v", err, len(sigs), algs)
			}
			return
		}
		fuzzInvariants(t, sigs)
		digests := map[crypto.Hash][]byte{}
		for _, s := range sigs {
			if s.Verified() {
				t.Fatalf("signature %d %v verified without digests", s.Index, s.Path)
			}
			if _, ok := digests[s.DigestAlgorithm]; !ok && s.Digest != nil {
				digests[s.DigestAlgorithm] = s.Digest
			}
		}
		sigs2, err := pe.Verify(table, 0, digests, opts)
		if err != nil || len(sigs2) != len(sigs) {
			t.Fatalf("with digests: %d signatures, error %v; without: %d", len(sigs2), err, len(sigs))
		}
		fuzzInvariants(t, sigs2)
		for i, s := range sigs2 {
			if s.Index != sigs[i].Index || !slices.Equal(s.Path, sigs[i].Path) {
				t.Fatalf("signature %d: %d %v with digests, %d %v without", i, s.Index, s.Path, sigs[i].Index, sigs[i].Path)
			}
			if s.Verified() && !slices.Contains(algs, s.DigestAlgorithm) {
				t.Fatalf("signature %d %v verified over %v, which DigestAlgorithms (%v) misses", s.Index, s.Path, s.DigestAlgorithm, algs)
			}
		}
	})
}

func fuzzInvariants(t *testing.T, sigs []*signing.Signature) {
	t.Helper()
	checkInvariants(t, sigs)
	for _, s := range sigs {
		if errors.Is(s.Problem, authenticode.ErrInternal) {
			t.Fatalf("recovered panic: %v", s.Problem)
		}
		if ts := s.Timestamp; ts != nil && errors.Is(ts.Problem, authenticode.ErrInternal) {
			t.Fatalf("recovered panic in a timestamp: %v", ts.Problem)
		}
	}
	if t.Failed() {
		t.FailNow()
	}
}

type fuzzSeed struct {
	data []byte
	raw  bool
}

// hostileSeeds returns the shapes Verify must refuse, built from a signature
// osslsigncode makes (none when it is not installed).
func hostileSeeds(f *testing.F) []fuzzSeed {
	if _, err := exec.LookPath("osslsigncode"); err != nil {
		return nil
	}
	p := newPKI(f)
	s, tsa := p.signer(f, testca.LeafOptions{}), p.tsa(f)
	good := parseSignedPE(f, osslSign(f, peFile(1024), s, "-h", "sha256"))
	der := good.pkcs7(f)
	stamped := parseSignedPE(f, osslSign(f, peFile(1024), s, "-h", "sha256",
		"-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", strconv.FormatInt(testca.Epoch.Unix(), 10))).pkcs7(f)
	junk := bytes.Repeat([]byte("junk"), 256)
	notCert := encode(cbasn1.SEQUENCE, encode(cbasn1.OCTET_STRING, junk))
	// Junk under a type Verify reads only in an Authenticode SignerInfo,
	// in the time-stamp token's SignerInfo.
	tokenJunk := encode(cbasn1.Tag(1).Constructed().ContextSpecific(),
		attr(f, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 311, 2, 4, 1}, encode(cbasn1.OCTET_STRING, junk)))
	return []fuzzSeed{
		{insertChild(f, stamped, tokenJunk, signerInfoPath(siUnsigned, 0, 1, 0, 1, 0, -1, 0)...), false},
		{append(bytes.Clone(good.table), makeTable(pkcs7Entry(junk))...), true},
		{append(bytes.Clone(good.table), makeTable(tableEntry{revision: binpe.CertRevision2_0, typ: binpe.CertTypeX509, data: append([]byte("MZ"), junk...)})...), true},
		{append(bytes.Clone(der), 'M', 'Z'), false},
		{withUnsigned(f, der, attr(f, asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 7}, encode(cbasn1.OCTET_STRING, junk))), false},
		{insertChild(f, der, notCert, pathCerts...), false},
		{withSignedDataField(f, der, encode(cbasn1.Tag(1).Constructed().ContextSpecific(), notCert), 4), false},
	}
}

// fuzzSeeds returns the certificate tables of real and freshly signed files.
func fuzzSeeds(f *testing.F) [][]byte {
	var tables [][]byte
	add := func(data []byte) {
		pf, err := binpe.Parse(bytes.NewReader(data), int64(len(data)))
		if err == nil && pf.Signed() {
			tables = append(tables, bytes.Clone(data[pf.CertTable.Off:pf.CertTable.End()]))
		}
	}
	dir := filepath.Join(testenv.RepoRoot(f), "..", "shared", "testdata", "pe")
	if env := os.Getenv("CSV_SHARED"); env != "" {
		dir = filepath.Join(env, "testdata", "pe")
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*", "*"))
	efi := os.Getenv("CSV_DEBIAN_EFI")
	if efi == "" {
		efi = "/tmp/csv-debian-efi"
	}
	paths = append(paths, filepath.Join(efi, debianShim), filepath.Join(efi, debianGrub))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			add(data)
		}
	}
	if _, err := exec.LookPath("osslsigncode"); err != nil {
		f.Logf("osslsigncode is not installed: no freshly signed seeds")
		return tables
	}
	p := newPKI(f)
	rsaS := p.signer(f, testca.LeafOptions{})
	ecS := p.signer(f, testca.LeafOptions{KeyType: testca.ECDSAP256})
	tsa := p.tsa(f)
	in := peFile(2048)
	plain := osslSign(f, in, rsaS, "-h", "sha256")
	add(plain)
	add(osslSign(f, in, ecS, "-h", "sha1"))
	add(osslSign(f, plain, ecS, "-nest", "-h", "sha384"))
	add(osslSign(f, in, rsaS, "-h", "sha256", "-TSA-certs", tsa.files.Chain, "-TSA-key", tsa.files.Key, "-TSA-time", strconv.FormatInt(testca.Epoch.Unix(), 10)))
	add(osslSign(f, in, rsaS, "-h", "sha512", "-t", legacyTSA(f, tsa, []*x509.Certificate{tsa.leaf.Cert}, testca.Epoch)))
	add(osslSign(f, in, rsaS, "-ph", "-h", "sha256"))
	add(osslSign(f, in, rsaS, "-ph", "-h", "sha1"))
	return tables
}

// FuzzVerifyTimestampResponse feeds TimeStampResp bytes and a signature to
// VerifyTimestampResponse. Seeds: a response of the local test TSA over a
// signature, and that response with the signature changed. Invariants: no
// panic (a recovered one is ErrInternal, which fails too); an error wraps
// ErrTimestamp; a response that verifies has a time and a TSA certificate,
// and does not verify over any other signature (the imprint binds it).
func FuzzVerifyTimestampResponse(f *testing.F) {
	p := newPKI(f)
	tsaSigner := p.tsa(f)
	tsa := newRFC3161TSA(f, tsaSigner, []*x509.Certificate{tsaSigner.leaf.Cert, p.ca.Intermediate.Cert}, testca.Epoch)
	sig := []byte("the signature bytes a timestamp vouches for")
	resp, _, err := tsahttp.Request(f.Context(), tsa.URL, nil, sig)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(resp, sig)
	f.Add(resp, []byte("another signature"))
	f.Add([]byte{0x30, 0x03, 0x02, 0x01, 0x00}, sig)
	f.Fuzz(func(t *testing.T, resp, sig []byte) {
		tok, err := authenticode.VerifyTimestampResponse(resp, sig)
		if err != nil {
			if errors.Is(err, authenticode.ErrInternal) || !errors.Is(err, authenticode.ErrTimestamp) {
				t.Fatalf("err = %v", err)
			}
			return
		}
		if tok.Time.IsZero() || tok.Signer == nil {
			t.Fatalf("verified token %+v", tok)
		}
		other := append([]byte{0}, sig...)
		if _, err := authenticode.VerifyTimestampResponse(resp, other); err == nil {
			t.Fatal("the token verifies over another signature too")
		}
	})
}
