// Package bundle writes and verifies Sigstore bundles signed with a build
// certificate: a detached FILE.sigstore.json beside any artifact
// ([New], [Verify]), and the DSSE-envelope bundle that carries the signed
// build manifest ([NewDSSE], [VerifyDSSE], used by signing/manifest).
//
// # Format
//
// A bundle is the Sigstore bundle JSON (protobuf-specs
// dev.sigstore.bundle.v1.Bundle) with media type
// application/vnd.dev.sigstore.bundle+json;version=0.2 ([MediaType]), the
// signing certificate chain as verificationMaterial.x509CertificateChain
// (leaf first, the self-signed root left out as the spec requires), no
// transparency log entry, and for a DSSE bundle made with a [Timestamper]
// an RFC 3161 timestamp over the signature. Version 0.2 because it is the
// newest version that carries a chain and that both cosign v2.6 and
// sigstore-go accept: v0.3 allows a single certificate only, and
// sigstore-go v1.1.4 (cosign v2.6.5's) refuses a v0.3 chain outright;
// sigstore-go v1.3.0 accepts one only with bundle.AllowCertificateChain().
//
// An artifact bundle's content is a messageSignature: the artifact's
// SHA-256 digest and a signature over that digest, RSA PKCS#1 v1.5 with
// SHA-256 or ECDSA P-256 with SHA-256 (an ASN.1 signature). Other keys are
// refused by [New]: sigstore verifiers check P-384 and P-521 signatures
// against SHA-384 and SHA-512 digests, and Ed25519 cannot sign a digest.
//
// # Verifying with cosign or sigstore-go
//
// The bundles verify offline with cosign and sigstore-go given a trusted
// root that holds the CA chain (see [TrustedRoot]), with the transparency
// log requirement waived and the certificate checked at the current time:
//
//	cosign verify-blob --bundle app.exe.sigstore.json --trusted-root trusted_root.json \
//	    --insecure-ignore-tlog --insecure-ignore-sct \
//	    --certificate-identity-regexp '.*' --certificate-oidc-issuer-regexp '.*' app.exe
//
// and, in Go, verify.NewVerifier(trustedRoot, verify.WithCurrentTime()) with
// verify.NewPolicy(verify.WithArtifactDigest("sha256", d),
// verify.WithoutIdentitiesUnsafe()). Both need the leaf certificate to
// carry a URI or e-mail subject alternative name (sigstore-go summarizes the
// signer by its SAN and fails without one); [Verify] does not. Both take the
// intermediates from the trusted root, not from a v0.2 bundle's chain.
//
// # Security
//
// Bundles are untrusted input: [Verify] and [VerifyDSSE] cap their size,
// decode them strictly (unknown fields, trailing data and duplicate fields
// are errors), cap the chain at 10 certificates, and then check, in order,
// the media type, the content type, the chain to one of the caller's roots
// at the caller's time with the code signing EKU, the digest, and the
// signature. Transparency log entries, if a bundle has any, are ignored,
// and so are timestamps unless the caller gives VerifyDSSE a way to trust
// them (VerifyOptions.VerifyTimestamp): trust comes from the caller's roots
// alone, and the time is the caller's or a timestamp's it trusts. The bundle's certificates are only intermediates for path
// building; a root inside the bundle is never trusted.
package bundle

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	_ "crypto/sha512" // SHA-384 and SHA-512 for DSSE signatures by P-384 and P-521 keys
	"crypto/x509"
	"errors"
	"fmt"
	"strconv"
	"time"

	protobundle "github.com/sigstore/protobuf-specs/gen/pb-go/bundle/v1"
	protocommon "github.com/sigstore/protobuf-specs/gen/pb-go/common/v1"
	protodsse "github.com/sigstore/protobuf-specs/gen/pb-go/dsse"
	prototrustroot "github.com/sigstore/protobuf-specs/gen/pb-go/trustroot/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/codesignval/csv/signing"
)

// MediaType is the media type of the bundles New and NewDSSE write.
const MediaType = "application/vnd.dev.sigstore.bundle+json;version=0.2"

// TrustedRootMediaType is the media type of TrustedRoot's output.
const TrustedRootMediaType = "application/vnd.dev.sigstore.trustedroot+json;version=0.1"

// Caps on untrusted bundles.
const (
	// MaxSize caps an artifact bundle: a chain of a few certificates and
	// one signature take a few kilobytes.
	MaxSize = 1 << 20
	// MaxDSSESize caps a DSSE bundle, whose payload (a build manifest)
	// grows with the number of files.
	MaxDSSESize = 64 << 20
	// MaxChain caps the certificates in a bundle's chain.
	MaxChain = 10
)

// accepted are the bundle media types Verify reads.
var accepted = map[string]bool{
	"application/vnd.dev.sigstore.bundle+json;version=0.1": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.2": true,
	"application/vnd.dev.sigstore.bundle+json;version=0.3": true,
	"application/vnd.dev.sigstore.bundle.v0.3+json":        true,
}

// Errors. Test for them with errors.Is. A bundle reports with the signing
// package's sentinels where the concept is the same as for every other
// signature (signing.ErrMalformed, signing.ErrDigestMismatch,
// signing.ErrSignature, signing.ErrTimestamp, signing.ErrSigner for a key
// that cannot make a bundle); only ErrUntrusted is its own. The messages
// keep the "bundle: " words they had.
var (
	// ErrUntrusted: the certificate chain does not verify to the roots at
	// the time given, or the leaf lacks the code signing EKU.
	ErrUntrusted = errors.New("bundle: certificate not trusted")
)

// The signing package's sentinels under the names earlier versions of this
// package exported.
//
// Deprecated: test for the signing sentinels: ErrMalformed is
// signing.ErrMalformed, ErrDigest signing.ErrDigestMismatch, ErrSignature
// signing.ErrSignature, ErrKey signing.ErrSigner, ErrTimestamp
// signing.ErrTimestamp.
var (
	ErrMalformed = signing.ErrMalformed
	ErrDigest    = signing.ErrDigestMismatch
	ErrSignature = signing.ErrSignature
	ErrKey       = signing.ErrSigner
	ErrTimestamp = signing.ErrTimestamp
)

// The errors this package wraps: the signing sentinels with this package's
// words for them, so that messages read as they did.
var (
	errMalformed = signing.Errorf(signing.ErrMalformed, "bundle: malformed")
	errDigest    = signing.Errorf(signing.ErrDigestMismatch, "bundle: digest does not match the artifact")
	errSignature = signing.Errorf(signing.ErrSignature, "bundle: signature does not verify")
	errKey       = signing.Errorf(signing.ErrSigner, "bundle: unsupported signing key")
	errTimestamp = signing.Errorf(signing.ErrTimestamp, "bundle: timestamp does not verify")
)

// New returns the JSON of a bundle signing an artifact's SHA-256 digest
// with signer, carrying chain (leaf first; a self-signed root at the end is
// left out). The signer's key must be the leaf's, RSA or ECDSA P-256.
// With ts, the signature is countersigned as NewDSSE does.
func New(digest []byte, signer crypto.Signer, chain []*x509.Certificate, ts Timestamper) ([]byte, error) {
	if len(digest) != sha256.Size {
		return nil, fmt.Errorf("bundle: digest of %d bytes is not SHA-256", len(digest))
	}
	if err := checkSigner(signer, chain); err != nil {
		return nil, err
	}
	switch k := signer.Public().(type) {
	case *rsa.PublicKey:
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA %s: sigstore verifiers expect SHA-384/512 digests with P-384/521 keys, and the bundle carries SHA-256 (use P-256 or RSA)", errKey, k.Curve.Params().Name)
		}
	default:
		return nil, fmt.Errorf("%w: %T cannot sign a SHA-256 digest for sigstore verifiers (use RSA or ECDSA P-256)", errKey, k)
	}
	sig, err := signer.Sign(rand.Reader, digest, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("bundle: signing: %w", err)
	}
	vm, err := stamped(material(chain), sig, ts)
	if err != nil {
		return nil, err
	}
	b := &protobundle.Bundle{
		MediaType:            MediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_MessageSignature{MessageSignature: &protocommon.MessageSignature{
			MessageDigest: &protocommon.HashOutput{Algorithm: protocommon.HashAlgorithm_SHA2_256, Digest: bytes.Clone(digest)},
			Signature:     sig,
		}},
	}
	return marshal(b)
}

// Verify checks bundleJSON against an artifact's SHA-256 digest, offline,
// in this order: size and strict decoding; media type (v0.1 to v0.3);
// content is a messageSignature; with opts.VerifyTimestamp, every RFC 3161
// timestamp, as VerifyDSSE checks them; the chain (x509CertificateChain, or
// a single certificate) verifies to one of opts.Roots, at the timestamp's
// time or opts.Now, with the code signing EKU, and the leaf lists that EKU
// itself; the bundle's digest, if it has one, is SHA-256 and equals digest;
// the signature over digest verifies with the leaf's key (RSA PKCS#1 v1.5
// or ECDSA).
func Verify(bundleJSON []byte, digest []byte, opts VerifyOptions) error {
	if len(digest) != sha256.Size {
		return fmt.Errorf("bundle: digest of %d bytes is not SHA-256", len(digest))
	}
	b, err := parse(bundleJSON, MaxSize)
	if err != nil {
		return err
	}
	ms := b.GetMessageSignature()
	if ms == nil {
		return fmt.Errorf("%w: content is not a messageSignature", errMalformed)
	}
	at, _, _, err := signedAt(b, ms.GetSignature(), opts)
	if err != nil {
		return err
	}
	chain, err := verifyChain(b, opts.Roots, at)
	if err != nil {
		return err
	}
	if md := ms.GetMessageDigest(); md != nil {
		if md.GetAlgorithm() != protocommon.HashAlgorithm_SHA2_256 {
			return fmt.Errorf("%w: message digest algorithm %v", errMalformed, md.GetAlgorithm())
		}
		if !bytes.Equal(md.GetDigest(), digest) {
			return errDigest
		}
	}
	if err := checkDigestSignature(chain[0].PublicKey, crypto.SHA256, digest, ms.GetSignature()); err != nil {
		return err
	}
	return nil
}

// Envelope is a verified DSSE envelope: its payload, and the chain that
// signed it, from the leaf to the trusted root.
type Envelope struct {
	PayloadType string
	Payload     []byte
	Chain       []*x509.Certificate
	// At is the time the chain was verified at: the trusted timestamp's,
	// if Timestamped, else VerifyOptions.Now.
	At          time.Time
	Timestamped bool
	// Timestamps is how many RFC 3161 timestamps the bundle carries,
	// verified or (without VerifyOptions.VerifyTimestamp) not.
	Timestamps int
}

// VerifyOptions say what VerifyDSSE trusts.
type VerifyOptions struct {
	// Roots are the trusted roots of the signer's chain.
	Roots []*x509.Certificate
	// Now is the time to check the chain at, without a trusted timestamp;
	// with VerifyTimestamp, also the time no timestamp may be after.
	Now time.Time
	// VerifyTimestamp, if set, checks an RFC 3161 TimeStampResp the bundle
	// carries over the DSSE signature, including that its TSA is trusted,
	// and returns the time it vouches for. Then every timestamp the bundle
	// carries must pass, and state a time no later than Now, and the chain
	// is checked at the first one's time instead of Now: a signature made
	// while the certificate was valid stays valid after it expires. Unset,
	// timestamps are not read.
	VerifyTimestamp func(resp, signature []byte) (time.Time, error)
}

// PAE is the DSSE v1 pre-authentication encoding of a payload.
func PAE(payloadType string, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteString("DSSEv1 ")
	b.WriteString(strconv.Itoa(len(payloadType)))
	b.WriteByte(' ')
	b.WriteString(payloadType)
	b.WriteByte(' ')
	b.WriteString(strconv.Itoa(len(payload)))
	b.WriteByte(' ')
	b.Write(payload)
	return b.Bytes()
}

// dsseHash is the hash a DSSE signature by pub is made with: what sigstore
// verifiers expect by default (SHA-256 for RSA and P-256, SHA-384 for
// P-384, SHA-512 for P-521, none for Ed25519).
func dsseHash(pub crypto.PublicKey) (crypto.Hash, error) {
	switch k := pub.(type) {
	case *rsa.PublicKey:
		return crypto.SHA256, nil
	case *ecdsa.PublicKey:
		switch k.Curve {
		case elliptic.P256():
			return crypto.SHA256, nil
		case elliptic.P384():
			return crypto.SHA384, nil
		case elliptic.P521():
			return crypto.SHA512, nil
		}
		return 0, fmt.Errorf("%w: ECDSA %s", errKey, k.Curve.Params().Name)
	case ed25519.PublicKey:
		return 0, nil
	}
	return 0, fmt.Errorf("%w: %T", errKey, pub)
}

// A Timestamper countersigns a signature: it returns a DER RFC 3161
// TimeStampResp over it (timestamp.Request makes one).
type Timestamper func(signature []byte) (timeStampResp []byte, err error)

// MaxTimestamps caps the RFC 3161 timestamps a bundle may carry.
const MaxTimestamps = 4

// NewDSSE returns the JSON of a bundle whose content is a DSSE envelope of
// payload, signed (over PAE(payloadType, payload)) by signer, carrying chain
// as New does. RSA, ECDSA P-256/384/521 and Ed25519 keys are accepted. With
// ts, the signature is countersigned and the TimeStampResp goes in
// verificationMaterial.timestampVerificationData.rfc3161Timestamps, where
// Sigstore verifiers look for it (its message imprint is over the
// signature bytes, as they expect).
func NewDSSE(payloadType string, payload []byte, signer crypto.Signer, chain []*x509.Certificate, ts Timestamper) ([]byte, error) {
	if payloadType == "" {
		return nil, errors.New("bundle: empty DSSE payload type")
	}
	if err := checkSigner(signer, chain); err != nil {
		return nil, err
	}
	h, err := dsseHash(signer.Public())
	if err != nil {
		return nil, err
	}
	sig, err := signer.Sign(rand.Reader, hashed(h, PAE(payloadType, payload)), h)
	if err != nil {
		return nil, fmt.Errorf("bundle: signing: %w", err)
	}
	vm, err := stamped(material(chain), sig, ts)
	if err != nil {
		return nil, err
	}
	b := &protobundle.Bundle{
		MediaType:            MediaType,
		VerificationMaterial: vm,
		Content: &protobundle.Bundle_DsseEnvelope{DsseEnvelope: &protodsse.Envelope{
			Payload:     payload,
			PayloadType: payloadType,
			Signatures:  []*protodsse.Signature{{Sig: sig}},
		}},
	}
	return marshal(b)
}

// VerifyDSSE checks a DSSE bundle offline, in this order: size (MaxDSSESize)
// and strict decoding; media type; content is a DSSE envelope with exactly
// one signature (as Sigstore requires) and the payload type wanted; with
// opts.VerifyTimestamp, every RFC 3161 timestamp (at most MaxTimestamps);
// the chain verifies to one of opts.Roots, at the timestamp's time or
// opts.Now, with the code signing EKU; the signature over PAE(payloadType,
// payload) verifies with the leaf's key, with the hash sigstore verifiers
// use for that key. It returns the verified envelope.
func VerifyDSSE(bundleJSON []byte, payloadType string, opts VerifyOptions) (*Envelope, error) {
	b, err := parse(bundleJSON, MaxDSSESize)
	if err != nil {
		return nil, err
	}
	env := b.GetDsseEnvelope()
	if env == nil {
		return nil, fmt.Errorf("%w: content is not a DSSE envelope", errMalformed)
	}
	if len(env.GetSignatures()) != 1 {
		return nil, fmt.Errorf("%w: DSSE envelope with %d signatures (want 1)", errMalformed, len(env.GetSignatures()))
	}
	if env.GetPayloadType() != payloadType {
		return nil, fmt.Errorf("%w: DSSE payload type %q (want %q)", errMalformed, env.GetPayloadType(), payloadType)
	}
	sig := env.GetSignatures()[0].GetSig()
	out := &Envelope{PayloadType: env.GetPayloadType(), Payload: env.GetPayload()}
	if out.At, out.Timestamped, out.Timestamps, err = signedAt(b, sig, opts); err != nil {
		return nil, err
	}
	chain, err := verifyChain(b, opts.Roots, out.At)
	if err != nil {
		return nil, err
	}
	h, err := dsseHash(chain[0].PublicKey)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errSignature, err)
	}
	if err := checkDigestSignature(chain[0].PublicKey, h, hashed(h, PAE(env.GetPayloadType(), env.GetPayload())), sig); err != nil {
		return nil, err
	}
	out.Chain = chain
	return out, nil
}

// TrustedRoot returns a Sigstore trusted root (JSON) with one certificate
// authority: the CA certificates of chain, in issuing order (leaf
// certificates, those that are not CAs, are left out). It has no
// transparency log or CT log, and one time-stamping authority per tsaChain
// (the TSA's certificate first, up to its root), for timestamped bundles.
// Give it to cosign verify-blob --trusted-root, or to sigstore-go's
// root.NewTrustedRootFromJSON, to verify bundles signed under that CA. Each
// authority is valid for the intersection of its certificates' validity.
func TrustedRoot(chain []*x509.Certificate, tsaChains ...[]*x509.Certificate) ([]byte, error) {
	var ca []*x509.Certificate
	for _, c := range chain {
		if c.IsCA {
			ca = append(ca, c)
		}
	}
	if len(ca) == 0 {
		return nil, errors.New("bundle: no CA certificate for the trusted root")
	}
	tr := &prototrustroot.TrustedRoot{
		MediaType:              TrustedRootMediaType,
		CertificateAuthorities: []*prototrustroot.CertificateAuthority{authority(ca)},
	}
	for i, tc := range tsaChains {
		if len(tc) == 0 || tc[0].IsCA {
			return nil, fmt.Errorf("bundle: time-stamping authority #%d: the chain must start with the TSA's certificate", i+1)
		}
		tr.TimestampAuthorities = append(tr.TimestampAuthorities, authority(tc))
	}
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(tr)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding the trusted root: %w", err)
	}
	return out, nil
}

// authority is a trusted root's authority of certs (in issuing order),
// named after the last, valid for the intersection of their validity.
func authority(certs []*x509.Certificate) *prototrustroot.CertificateAuthority {
	start, end := certs[0].NotBefore, certs[0].NotAfter
	raw := make([]*protocommon.X509Certificate, len(certs))
	for i, c := range certs {
		raw[i] = &protocommon.X509Certificate{RawBytes: c.Raw}
		if c.NotBefore.After(start) {
			start = c.NotBefore
		}
		if c.NotAfter.Before(end) {
			end = c.NotAfter
		}
	}
	subject := certs[len(certs)-1].Subject
	org := ""
	if len(subject.Organization) > 0 {
		org = subject.Organization[0]
	}
	return &prototrustroot.CertificateAuthority{
		Subject:   &protocommon.DistinguishedName{Organization: org, CommonName: subject.CommonName},
		CertChain: &protocommon.X509CertificateChain{Certificates: raw},
		ValidFor:  &protocommon.TimeRange{Start: timestamppb.New(start), End: timestamppb.New(end)},
	}
}

func checkSigner(signer crypto.Signer, chain []*x509.Certificate) error {
	if signer == nil {
		return fmt.Errorf("%w: no signer", errKey)
	}
	if len(chain) == 0 || chain[0] == nil {
		return errors.New("bundle: no signing certificate")
	}
	if len(chain) > MaxChain {
		return fmt.Errorf("bundle: chain of %d certificates (at most %d)", len(chain), MaxChain)
	}
	pub, ok := signer.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(chain[0].PublicKey) {
		return fmt.Errorf("%w: the signer's key is not the certificate %q's", errKey, chain[0].Subject.CommonName)
	}
	return nil
}

// stamped adds to vm a timestamp of sig by ts, if ts is set.
func stamped(vm *protobundle.VerificationMaterial, sig []byte, ts Timestamper) (*protobundle.VerificationMaterial, error) {
	if ts == nil {
		return vm, nil
	}
	resp, err := ts(sig)
	if err != nil {
		return nil, fmt.Errorf("bundle: timestamping the signature: %w", err)
	}
	vm.TimestampVerificationData = &protobundle.TimestampVerificationData{
		Rfc3161Timestamps: []*protocommon.RFC3161SignedTimestamp{{SignedTimestamp: resp}},
	}
	return vm, nil
}

// signedAt returns the time to check b's chain at: with
// opts.VerifyTimestamp, the first timestamp's, once every timestamp over
// sig verified; else opts.Now. It also returns whether the time is a
// timestamp's, and how many timestamps b carries.
func signedAt(b *protobundle.Bundle, sig []byte, opts VerifyOptions) (time.Time, bool, int, error) {
	stamps := b.GetVerificationMaterial().GetTimestampVerificationData().GetRfc3161Timestamps()
	if len(stamps) > MaxTimestamps {
		return time.Time{}, false, len(stamps), fmt.Errorf("%w: %d RFC 3161 timestamps (at most %d)", errMalformed, len(stamps), MaxTimestamps)
	}
	if opts.VerifyTimestamp == nil || len(stamps) == 0 {
		return opts.Now, false, len(stamps), nil
	}
	var at time.Time
	for i, st := range stamps {
		t, err := opts.VerifyTimestamp(st.GetSignedTimestamp(), sig)
		if err != nil {
			return time.Time{}, false, len(stamps), fmt.Errorf("%w: RFC 3161 timestamp #%d: %w", errTimestamp, i+1, err)
		}
		// A time after the verifier's is no evidence of when the signature
		// was made (a TSA with a wrong clock, or one that would let a
		// not-yet-valid certificate pass): refused, as validate does not
		// trust one either.
		if t.After(opts.Now) {
			return time.Time{}, false, len(stamps), fmt.Errorf("%w: RFC 3161 timestamp #%d: %s is after the verification time %s",
				errTimestamp, i+1, t.UTC().Format(time.RFC3339), opts.Now.UTC().Format(time.RFC3339))
		}
		if i == 0 {
			at = t
		}
	}
	return at, true, len(stamps), nil
}

// material is the chain without self-signed certificates (roots).
func material(chain []*x509.Certificate) *protobundle.VerificationMaterial {
	certs := []*protocommon.X509Certificate{{RawBytes: chain[0].Raw}}
	for _, c := range chain[1:] {
		if bytes.Equal(c.RawIssuer, c.RawSubject) && c.CheckSignatureFrom(c) == nil {
			continue
		}
		certs = append(certs, &protocommon.X509Certificate{RawBytes: c.Raw})
	}
	return &protobundle.VerificationMaterial{
		Content: &protobundle.VerificationMaterial_X509CertificateChain{
			X509CertificateChain: &protocommon.X509CertificateChain{Certificates: certs},
		},
	}
}

func marshal(b *protobundle.Bundle) ([]byte, error) {
	out, err := protojson.MarshalOptions{Multiline: true, Indent: "  "}.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("bundle: encoding: %w", err)
	}
	return append(out, '\n'), nil
}

// parse decodes a bundle strictly and checks its media type.
func parse(data []byte, max int) (*protobundle.Bundle, error) {
	if len(data) > max {
		return nil, fmt.Errorf("%w: %d bytes, over the %d-byte cap", errMalformed, len(data), max)
	}
	var b protobundle.Bundle
	if err := (protojson.UnmarshalOptions{}).Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if !accepted[b.GetMediaType()] {
		return nil, fmt.Errorf("%w: media type %q", errMalformed, b.GetMediaType())
	}
	return &b, nil
}

// verifyChain returns the verified chain, leaf to root.
func verifyChain(b *protobundle.Bundle, roots []*x509.Certificate, now time.Time) ([]*x509.Certificate, error) {
	if len(roots) == 0 {
		return nil, fmt.Errorf("%w: no trusted roots given", ErrUntrusted)
	}
	vm := b.GetVerificationMaterial()
	var raw [][]byte
	switch {
	case vm.GetX509CertificateChain() != nil:
		for _, c := range vm.GetX509CertificateChain().GetCertificates() {
			raw = append(raw, c.GetRawBytes())
		}
	case vm.GetCertificate() != nil:
		raw = append(raw, vm.GetCertificate().GetRawBytes())
	default:
		return nil, fmt.Errorf("%w: no certificate in the verification material", errMalformed)
	}
	if len(raw) == 0 || len(raw) > MaxChain {
		return nil, fmt.Errorf("%w: %d certificates in the chain (1 to %d)", errMalformed, len(raw), MaxChain)
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, der := range raw {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("%w: certificate #%d: %w", errMalformed, i+1, err)
		}
		certs[i] = c
	}
	leaf := certs[0]
	hasCS := false
	for _, u := range leaf.ExtKeyUsage {
		hasCS = hasCS || u == x509.ExtKeyUsageCodeSigning
	}
	if !hasCS {
		return nil, fmt.Errorf("%w: certificate %q lacks the code signing EKU", ErrUntrusted, leaf.Subject.CommonName)
	}
	rootPool, inter := x509.NewCertPool(), x509.NewCertPool()
	for _, r := range roots {
		rootPool.AddCert(r)
	}
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         rootPool,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	})
	if err != nil {
		return nil, fmt.Errorf("%w: certificate %q: %w", ErrUntrusted, leaf.Subject.CommonName, err)
	}
	return chains[0], nil
}

// checkDigestSignature verifies sig with pub over digest, a digest of h, or
// over the message itself when h is 0 (Ed25519).
func checkDigestSignature(pub crypto.PublicKey, h crypto.Hash, digest, sig []byte) error {
	ok := false
	switch k := pub.(type) {
	case *rsa.PublicKey:
		ok = h != 0 && rsa.VerifyPKCS1v15(k, h, digest, sig) == nil
	case *ecdsa.PublicKey:
		ok = h != 0 && ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		ok = h == 0 && ed25519.Verify(k, digest, sig)
	default:
		return fmt.Errorf("%w: public key type %T", errSignature, pub)
	}
	if !ok {
		return errSignature
	}
	return nil
}

// hashed returns msg hashed with h, or msg itself if h is 0.
func hashed(h crypto.Hash, msg []byte) []byte {
	if h == 0 {
		return msg
	}
	hh := h.New()
	hh.Write(msg)
	return hh.Sum(nil)
}
