package pe_test

// The test PKI and the peer tool: signing with osslsigncode (the independent
// signer) and asking it for a second opinion, and a local legacy Authenticode
// time-stamp server for osslsigncode's -t.

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// pki is a test CA with PEM files for osslsigncode.
type pki struct {
	ca          *testca.CA
	dir         string
	root, inter *signing.Certificate
	rootPEM     string
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	p := &pki{ca: ca, dir: t.TempDir(), root: mustCert(t, ca.Root.Cert.Raw), inter: mustCert(t, ca.Intermediate.Cert.Raw)}
	p.rootPEM = filepath.Join(p.dir, "root.pem")
	if err := os.WriteFile(p.rootPEM, testca.PEM(ca.Root.Cert), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// signer is a leaf of the PKI with its files.
type signer struct {
	leaf  *testca.Cert
	files testca.Files
	cert  *signing.Certificate
}

var signerSeq struct {
	sync.Mutex
	n int
}

func (p *pki) signer(t testing.TB, o testca.LeafOptions) *signer {
	t.Helper()
	return p.signerFor(t, p.ca.Leaf(t, o))
}

func (p *pki) signerFor(t testing.TB, leaf *testca.Cert) *signer {
	t.Helper()
	signerSeq.Lock()
	signerSeq.n++
	dir := filepath.Join(p.dir, "signer"+strconv.Itoa(signerSeq.n))
	signerSeq.Unlock()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	return &signer{leaf: leaf, files: p.ca.WriteFiles(t, dir, leaf), cert: mustCert(t, leaf.Cert.Raw)}
}

// tsa mints a time-stamping leaf (testca's TSA: critical timeStamping
// EKU) and writes its key and chain (TSA, intermediate) for osslsigncode's
// built-in TSA.
func (p *pki) tsa(t testing.TB) *signer {
	t.Helper()
	return p.signerFor(t, p.ca.TSA(t))
}

func mustCert(t testing.TB, der []byte) *signing.Certificate {
	t.Helper()
	c, err := signing.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// osslEnv is the environment for osslsigncode: without proxies, which would
// otherwise be asked for the local time-stamp server.
func osslEnv() []string {
	return testenv.NoProxyEnv()
}

// osslSign signs in with osslsigncode as s (and args) and returns the
// signed file.
func osslSign(t testing.TB, in []byte, s *signer, args ...string) []byte {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	dir := t.TempDir()
	inPath, outPath := filepath.Join(dir, "in.exe"), filepath.Join(dir, "out.exe")
	if err := os.WriteFile(inPath, in, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"sign", "-certs", s.files.Chain, "-key", s.files.Key}, args...)
	argv = append(argv, "-in", inPath, "-out", outPath)
	cmd := exec.Command(ossl, argv...)
	cmd.Env = osslEnv()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode %s: %v\n%s", strings.Join(argv, " "), err, out)
	}
	out, err := os.ReadFile(outPath)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// osslVerifies reports whether osslsigncode verify accepts data with the
// root as its CA file, at the test epoch.
func osslVerifies(t testing.TB, data []byte, caFile string, args ...string) (bool, string) {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	path := filepath.Join(t.TempDir(), "verify.exe")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"verify", "-CAfile", caFile, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10)}, args...)
	argv = append(argv, "-in", path)
	cmd := exec.Command(ossl, argv...)
	cmd.Env = osslEnv()
	out, err := cmd.CombinedOutput()
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) {
			t.Fatalf("running osslsigncode: %v", err)
		}
		return false, string(out)
	}
	return true, string(out)
}

// legacyTSA serves legacy Authenticode time-stamp requests (osslsigncode
// -t URL): the request is the base64 of a TimeStampRequest carrying the
// signature octets; the answer is a PKCS#7 SignedData whose SignerInfo (the
// countersignature: contentType data, signingTime, messageDigest = hash of
// the signature octets) osslsigncode copies into the unsigned attributes,
// and whose certificates it adds to the signature's.
func legacyTSA(t testing.TB, tsa *signer, chain []*x509.Certificate, at time.Time) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req, err := base64.StdEncoding.DecodeString(strings.Map(func(r rune) rune {
			if r == '\n' || r == '\r' {
				return -1
			}
			return r
		}, string(body)))
		if err != nil {
			http.Error(w, "bad base64: "+err.Error(), http.StatusBadRequest)
			return
		}
		sigOctets, ok := legacyRequestSignature(req)
		if !ok {
			http.Error(w, "bad TimeStampRequest", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(legacyResponse(t, tsa, chain, at, sigOctets))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// legacyRequestSignature reads TimeStampRequest ::= SEQUENCE { type OID,
// SEQUENCE { OID data, [0] EXPLICIT OCTET STRING signature } }.
func legacyRequestSignature(req []byte) ([]byte, bool) {
	s := cryptobyte.String(req)
	var body, blob, explicit cryptobyte.String
	var sig []byte
	ok := s.ReadASN1(&body, cbasn1.SEQUENCE) && body.SkipASN1(cbasn1.OBJECT_IDENTIFIER) &&
		body.ReadASN1(&blob, cbasn1.SEQUENCE) && blob.SkipASN1(cbasn1.OBJECT_IDENTIFIER) &&
		blob.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) &&
		explicit.ReadASN1Bytes(&sig, cbasn1.OCTET_STRING)
	return sig, ok
}

var (
	asnSHA256        = asn1.ObjectIdentifier{2, 16, 840, 1, 101, 3, 4, 2, 1}
	asnRSAEncryption = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 1, 1}
	asnData          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	asnSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	asnContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	asnMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	asnSigningTime   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 5}
)

func legacyResponse(t testing.TB, tsa *signer, chain []*x509.Certificate, at time.Time, sigOctets []byte) []byte {
	md := sha256.Sum256(sigOctets)
	attr := func(oid asn1.ObjectIdentifier, value func(*cryptobyte.Builder)) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1(cbasn1.SET, value)
		})
		return b.BytesOrPanic()
	}
	attrs := [][]byte{
		attr(asnContentType, func(b *cryptobyte.Builder) { b.AddASN1ObjectIdentifier(asnData) }),
		attr(asnSigningTime, func(b *cryptobyte.Builder) { b.AddASN1UTCTime(at) }),
		attr(asnMessageDigest, func(b *cryptobyte.Builder) { b.AddASN1OctetString(md[:]) }),
	}
	slices.SortFunc(attrs, bytes.Compare) // DER orders a SET OF by encoding
	signedAttrs := encode(cbasn1.SET, bytes.Join(attrs, nil))
	h := sha256.Sum256(signedAttrs)
	sig, err := tsa.leaf.Key.Sign(rand.Reader, h[:], crypto.SHA256)
	if err != nil {
		t.Error(err)
		return nil
	}
	signedAttrs[0] = 0xa0 // [0] IMPLICIT in the SignerInfo
	algo := func(b *cryptobyte.Builder, oid asn1.ObjectIdentifier) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1ObjectIdentifier(oid)
			b.AddASN1NULL()
		})
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1ObjectIdentifier(asnSignedData)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1Int64(1)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) { algo(b, asnSHA256) })
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddASN1ObjectIdentifier(asnData)
					b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
						b.AddASN1OctetString(sigOctets)
					})
				})
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, c := range chain {
						b.AddBytes(c.Raw)
					}
				})
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						b.AddASN1Int64(1)
						b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
							b.AddBytes(tsa.leaf.Cert.RawIssuer)
							b.AddASN1BigInt(tsa.leaf.Cert.SerialNumber)
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
	return b.BytesOrPanic()
}
