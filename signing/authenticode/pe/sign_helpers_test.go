package pe_test

// Helpers for the signing tests: signing into a real file, the checks every
// signed file must pass (layout, checksum, digest, osslsigncode), and a local
// RFC 3161 time-stamping authority.

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	binpe "github.com/codesignval/csv/internal/binfmt/pe"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/pe"
)

// chainOf is the chain Sign gets for a leaf of the PKI: leaf, issuing CA.
func (p *pki) chainOf(s *signer) []*x509.Certificate {
	return []*x509.Certificate{s.leaf.Cert, p.ca.Intermediate.Cert}
}

// signPE signs in with pe.Sign into a file on disk and returns
// the file's bytes.
func signPE(t testing.TB, in []byte, key crypto.Signer, chain []*x509.Certificate, opts authenticode.SignOptions) ([]byte, *authenticode.SignResult) {
	t.Helper()
	out, res, err := trySign(t, in, key, chain, opts)
	if err != nil {
		t.Fatalf("Sign: %v", err)
	}
	return out, res
}

func trySign(t testing.TB, in []byte, key crypto.Signer, chain []*x509.Certificate, opts authenticode.SignOptions) ([]byte, *authenticode.SignResult, error) {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "signed.exe"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := pe.Sign(context.Background(), bytes.NewReader(in), int64(len(in)), f, key, chain, opts)
	if err != nil {
		return nil, nil, err
	}
	out, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(out)) != res.Size {
		t.Errorf("SignResult.Size %d, but %d bytes were written", res.Size, len(out))
	}
	return out, res, nil
}

// checkSigned checks what must hold of every file Sign made from in: the
// input's image (up to its certificate table) is copied unchanged but for
// the two patched header fields, zero padding follows up to the 8-byte
// aligned table, which ends the file; the stored checksum is
// CheckSumMappedFile's; and the image digest (with the algorithm signed) is
// the same for the input, the output and SignResult.Digest.
func checkSigned(t testing.TB, in, out []byte, res *authenticode.SignResult, h crypto.Hash) *signedPE {
	t.Helper()
	inPE, err := binpe.Parse(bytes.NewReader(in), int64(len(in)))
	if err != nil {
		t.Fatal(err)
	}
	s := parseSignedPE(t, out)
	end := int64(len(in))
	if inPE.Signed() {
		end = inPE.CertTable.Off
	}
	wantOff := (end + 7) &^ 7
	if s.pf.CertTable.Off != wantOff || s.pf.CertTable.End() != int64(len(out)) || len(out)%8 != 0 {
		t.Errorf("certificate table [%#x, %#x) in a %d-byte file, want it at %#x (image end %#x) ending the file", s.pf.CertTable.Off, s.pf.CertTable.End(), len(out), wantOff, end)
	}
	masked := func(b []byte) []byte {
		b = bytes.Clone(b[:end])
		clear(b[inPE.CheckSumOffset : inPE.CheckSumOffset+4])
		clear(b[inPE.CertDirOffset : inPE.CertDirOffset+8])
		return b
	}
	if !bytes.Equal(masked(in), masked(out)) {
		t.Error("the image bytes were not copied unchanged")
	}
	if pad := out[end:wantOff]; !bytes.Equal(pad, make([]byte, len(pad))) {
		t.Errorf("padding %x is not zero", pad)
	}
	if want := testbin.Checksum(out, int(s.pf.CheckSumOffset)); s.pf.CheckSum != want {
		t.Errorf("stored checksum %#08x, CheckSumMappedFile gives %#08x", s.pf.CheckSum, want)
	}
	inDigest, err := imageOf(inPE).Digest(bytes.NewReader(in), h)
	if err != nil {
		t.Fatal(err)
	}
	if outDigest := s.digest(t, h); !bytes.Equal(inDigest, outDigest) || !bytes.Equal(res.Digest, inDigest) {
		t.Errorf("digests: input %x, output %x, SignResult %x", inDigest, outDigest, res.Digest)
	}
	return s
}

var checksumLine = regexp.MustCompile(`(?m)^(Current |Calculated )?PE checksum *: *([0-9A-F]{8})$`)

// osslAccepts runs osslsigncode verify (the root as CA file, at the test
// epoch) and fails the test unless it accepts the file and agrees with its
// stored checksum. osslsigncode 2.9 prints "PE checksum : X" when the
// stored checksum is the one it computes (or is 0), and "Current PE
// checksum" / "Calculated PE checksum" / "Warning: invalid PE checksum"
// when they differ. It returns the output.
func osslAccepts(t testing.TB, s *signedPE, caFile string, args ...string) string {
	t.Helper()
	ok, out := osslVerifies(t, s.data, caFile, args...)
	if !ok {
		t.Errorf("osslsigncode verify refuses the file:\n%s", out)
		return out
	}
	m := checksumLine.FindAllStringSubmatch(out, -1)
	stored := fmt.Sprintf("%08X", s.pf.CheckSum)
	switch {
	case strings.Contains(out, "invalid PE checksum"):
		t.Errorf("osslsigncode: invalid PE checksum:\n%s", out)
	case len(m) == 2 && m[0][1] == "Current " && m[1][1] == "Calculated ":
		if m[0][2] != m[1][2] || m[0][2] != stored {
			t.Errorf("osslsigncode: current PE checksum %s, calculated %s, stored %s", m[0][2], m[1][2], stored)
		}
	case len(m) == 1 && m[0][1] == "":
		if m[0][2] != stored || s.pf.CheckSum == 0 {
			t.Errorf("osslsigncode: PE checksum %s, stored %s", m[0][2], stored)
		}
	default:
		t.Errorf("osslsigncode printed no PE checksum line:\n%s", out)
	}
	return out
}

// TSA modes: how the test TSA misbehaves.
const (
	tsaOK           = ""
	tsaReject       = "reject"        // status rejection
	tsaWrongNonce   = "wrong-nonce"   // the nonce of another request
	tsaNoNonce      = "no-nonce"      // no nonce in the TSTInfo
	tsaWrongImprint = "wrong-imprint" // a token for other data
	tsaBadSignature = "bad-signature" // the token's signature does not verify
	tsaHTTPError    = "http-500"
	tsaGarbage      = "garbage" // not DER
	tsaNoToken      = "no-token"
)

// rfc3161TSA is a local RFC 3161 time-stamping authority: it answers
// application/timestamp-query POSTs with tokens signed by a test TSA
// certificate, at a fixed time, as OpenSSL's TS responder and commercial
// TSAs do (CMS SignedData of a TSTInfo, signed attributes contentType,
// messageDigest and ESS signingCertificateV2, the TSA's chain when certReq).
type rfc3161TSA struct {
	URL   string
	tsa   *signer
	chain []*x509.Certificate
	at    time.Time

	mu       sync.Mutex
	mode     string
	requests int
}

func newRFC3161TSA(t testing.TB, tsa *signer, chain []*x509.Certificate, at time.Time) *rfc3161TSA {
	t.Helper()
	s := &rfc3161TSA{tsa: tsa, chain: chain, at: at}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		mode := s.mode
		s.requests++
		serial := s.requests
		s.mu.Unlock()
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/timestamp-query" {
			http.Error(w, "want a POST of application/timestamp-query", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<16))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		resp, err := s.respond(body, mode, serial)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		if mode == tsaHTTPError {
			http.Error(w, "the TSA is down", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "application/timestamp-reply")
		w.Write(resp)
	}))
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	return s
}

func (s *rfc3161TSA) setMode(m string) {
	s.mu.Lock()
	s.mode = m
	s.mu.Unlock()
}

func (s *rfc3161TSA) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

var (
	asnTSTInfo        = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 1, 4}
	asnSigningCertV2  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 16, 2, 47}
	asnTestTSAPolicy  = asn1.ObjectIdentifier{1, 3, 6, 1, 4, 1, 99999, 1}
	errBadTimestampRq = fmt.Errorf("bad TimeStampReq")
)

// respond answers a DER TimeStampReq ::= SEQUENCE { version, messageImprint,
// reqPolicy OID OPTIONAL, nonce INTEGER OPTIONAL, certReq BOOLEAN DEFAULT
// FALSE, extensions [0] OPTIONAL }.
func (s *rfc3161TSA) respond(req []byte, mode string, serial int) ([]byte, error) {
	in := cryptobyte.String(req)
	var body, imprint cryptobyte.String
	var version int64
	if !in.ReadASN1(&body, cbasn1.SEQUENCE) || !in.Empty() || !body.ReadASN1Integer(&version) || version != 1 ||
		!body.ReadASN1Element(&imprint, cbasn1.SEQUENCE) || !body.SkipOptionalASN1(cbasn1.OBJECT_IDENTIFIER) {
		return nil, errBadTimestampRq
	}
	var nonce *big.Int
	if body.PeekASN1Tag(cbasn1.INTEGER) {
		nonce = new(big.Int)
		if !body.ReadASN1Integer(nonce) {
			return nil, errBadTimestampRq
		}
	}
	certReq := false
	if body.PeekASN1Tag(cbasn1.BOOLEAN) && !body.ReadASN1Boolean(&certReq) {
		return nil, errBadTimestampRq
	}
	if mode == tsaReject {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(2)
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.UTF8String, func(b *cryptobyte.Builder) { b.AddBytes([]byte("policy not supported")) })
				})
			})
		})
		return b.BytesOrPanic(), nil
	}
	if mode == tsaGarbage {
		return []byte("<html>not a timestamp</html>"), nil
	}
	if mode == tsaWrongImprint {
		var b cryptobyte.Builder
		other := sha256.Sum256([]byte("something else"))
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(asnSHA256)
				b.AddASN1NULL()
			})
			b.AddASN1OctetString(other[:])
		})
		imprint = b.BytesOrPanic()
	}
	switch mode {
	case tsaWrongNonce:
		if nonce != nil {
			nonce = new(big.Int).Add(nonce, big.NewInt(1))
		}
	case tsaNoNonce:
		nonce = nil
	}
	var tb cryptobyte.Builder
	tb.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TSTInfo
		b.AddASN1Int64(1)
		b.AddASN1ObjectIdentifier(asnTestTSAPolicy)
		b.AddBytes(imprint)
		b.AddASN1Int64(int64(serial))
		b.AddASN1GeneralizedTime(s.at)
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(1) }) // accuracy: 1 s
		if nonce != nil {
			b.AddASN1BigInt(nonce)
		}
	})
	tst := tb.BytesOrPanic()

	attr := func(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		return b.BytesOrPanic()
	}
	md := sha256.Sum256(tst)
	certHash := sha256.Sum256(s.tsa.leaf.Cert.Raw)
	attrs := [][]byte{
		attr(asnContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(asnTSTInfo) }),
		attr(asnSigningTime, func(b *cryptobyte.Builder) { b.AddASN1UTCTime(s.at) }),
		attr(asnMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md[:]) }),
		attr(asnSigningCertV2, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SigningCertificateV2
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // certs
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ESSCertIDv2, SHA-256 by default
						b.AddASN1OctetString(certHash[:])
					})
				})
			})
		}),
	}
	slices.SortFunc(attrs, bytes.Compare)
	signedAttrs := encode(cbasn1.SET, bytes.Join(attrs, nil))
	h := sha256.Sum256(signedAttrs)
	sig, err := s.tsa.leaf.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		return nil, err
	}
	if mode == tsaBadSignature {
		sig[len(sig)/2] ^= 1
	}
	signedAttrs[0] = 0xa0 // [0] IMPLICIT
	algo := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1NULL()
		})
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // TimeStampResp
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { b.AddASN1Int64(0) }) // granted
		if mode == tsaNoToken {
			return
		}
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
			b.AddASN1ObjectIdentifier(asnSignedData)
			b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1Int64(3)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { algo(b, asnSHA256) })
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1ObjectIdentifier(asnTSTInfo)
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							b.AddASN1OctetString(tst)
						})
					})
					if certReq {
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
							for _, c := range s.chain {
								b.AddBytes(c.Raw)
							}
						})
					}
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddASN1Int64(1)
							b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
								b.AddBytes(s.tsa.leaf.Cert.RawIssuer)
								b.AddASN1BigInt(s.tsa.leaf.Cert.SerialNumber)
							})
							algo(b, asnSHA256)
							b.AddBytes(signedAttrs)
							algo(b, asnRSAEncryption)
							b.AddASN1OctetString(sig)
						})
					})
				})
			})
		})
	})
	return b.BytesOrPanic(), nil
}

// sparseReader is size bytes of prefix followed by zeros, without holding
// them.
type sparseReader struct {
	prefix []byte
	size   int64
}

func (r sparseReader) ReadAt(p []byte, off int64) (int, error) {
	if off >= r.size {
		return 0, io.EOF
	}
	n := 0
	if off < int64(len(r.prefix)) {
		n = copy(p, r.prefix[off:])
	}
	m := min(int64(len(p)), r.size-off)
	clear(p[n:m])
	if m < int64(len(p)) {
		return int(m), io.EOF
	}
	return int(m), nil
}

// discard is an Output that keeps only the size and the WriteAt patches
// that fall in the first KiB (the headers).
type discard struct {
	n    int64
	head [1024]byte
}

func (d *discard) Write(p []byte) (int, error) {
	if d.n < int64(len(d.head)) {
		copy(d.head[d.n:], p)
	}
	d.n += int64(len(p))
	return len(p), nil
}

func (d *discard) WriteAt(p []byte, off int64) (int, error) {
	if off < int64(len(d.head)) {
		copy(d.head[off:], p)
	}
	return len(p), nil
}
