package signing

// This file reads certificate files: the one rule csv applies to every
// certificate it is given outside a signature (--certs, --cert, a policy's
// certificate and certificate_file, an attestation policy's PK/KEK/db
// entries, an AK certificate, the attestation service's CA and EK roots).

import (
	"bytes"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"unicode"
	"unicode/utf8"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/safefile"
)

// ErrChainFile is [ErrCertificate], which the errors of
// [ParseCertificates] and the functions built on it wrap: a file that is not
// certificates by their rule is a malformed certificate file.
//
// Deprecated: test for ErrCertificate.
var ErrChainFile = ErrCertificate

// maxChainCerts caps a signing chain: leaf, intermediates, root.
const maxChainCerts = 16

var pemBegin, pemEnd = []byte("-----BEGIN"), []byte("-----END")

// ParseCertificates reads the certificates of a certificate file, or of a
// certificate written inline (in a policy), by one rule:
//
//   - DER: input that starts with a SEQUENCE header (0x30, then a
//     long-form length: every certificate is longer than 127 bytes) is
//     exactly one DER certificate, with nothing after it;
//   - PEM (RFC 7468) otherwise: one or more CERTIFICATE blocks, returned in
//     order. Every block must be a CERTIFICATE without headers whose
//     base64 decodes: another block (a private key pasted in by mistake,
//     OpenSSL's TRUSTED CERTIFICATE, a PKCS#7 bundle) or a malformed one is
//     an error, not skipped, so that nothing in the file is silently left
//     out. Text outside the blocks is allowed, as RFC 7468 allows
//     explanatory text (openssl's "subject=" lines, a bundle's comments),
//     if it is text: UTF-8 without control characters other than tab, line
//     feed and carriage return, and without a stray BEGIN or END line.
//   - Empty input, input with no certificate and input over
//     limits.MaxCertFile (4 MiB) are errors.
//
// Each certificate is read with [ParseCertificate], leniently: one Go's
// crypto/x509 refuses (a firmware root with a negative serial number, the
// Debian Secure Boot CA's unhandled critical extension) is returned with
// Parsed nil, as trust anchors must be; callers that need Go's parse use
// [X509Certificates]. Every error wraps [ErrCertificate] and says which
// certificate or PEM block (#1 is the first) is at fault; errors do not
// name the file, which the caller does.
func ParseCertificates(data []byte) ([]*Certificate, error) {
	ders, err := certificateDERs(data)
	if err != nil {
		return nil, err
	}
	out := make([]*Certificate, 0, len(ders))
	for i, der := range ders {
		c, err := ParseCertificate(der)
		if err != nil {
			if len(ders) == 1 {
				return nil, err
			}
			return nil, fmt.Errorf("%w (certificate #%d)", err, i+1)
		}
		out = append(out, c)
	}
	return out, nil
}

// ParseOneCertificate reads a certificate file that holds exactly one
// certificate (a policy rule's, an AK certificate), by the rule of
// [ParseCertificates].
func ParseOneCertificate(data []byte) (*Certificate, error) {
	ders, err := certificateDERs(data)
	if err != nil {
		return nil, err
	}
	if len(ders) != 1 {
		return nil, fmt.Errorf("%w: %d certificates where one is wanted", ErrCertificate, len(ders))
	}
	return ParseCertificate(ders[0])
}

// X509Certificates returns Go's parse of each certificate ([Certificate]'s
// Parsed), for the APIs that take *x509.Certificate (crypto/x509 chain
// verification, TLS, signing): a certificate Go refuses is an error naming
// it.
func X509Certificates(certs []*Certificate) ([]*x509.Certificate, error) {
	out := make([]*x509.Certificate, 0, len(certs))
	for i, c := range certs {
		if c.Parsed == nil {
			return nil, fmt.Errorf("%w: certificate #%d (%q) is one Go's crypto/x509 refuses: %v", ErrCertificate, i+1, c.CommonName(), c.ParseError)
		}
		out = append(out, c.Parsed)
	}
	return out, nil
}

// ParseChain reads a signing certificate chain, leaf first, by the rule of
// [ParseCertificates]: at most 16 certificates, each one Go's crypto/x509
// accepts.
func ParseChain(data []byte) ([]*x509.Certificate, error) {
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, err
	}
	if len(certs) > maxChainCerts {
		return nil, fmt.Errorf("%w: a chain of more than %d certificates", ErrCertificate, maxChainCerts)
	}
	return X509Certificates(certs)
}

// ParseChainPEM is [ParseChain].
//
// Deprecated: use ParseChain, which reads DER too.
func ParseChainPEM(data []byte) ([]*x509.Certificate, error) { return ParseChain(data) }

// LoadChain reads a signing certificate chain file (see [ParseChain]): a
// regular file of at most limits.MaxCertFile bytes, opened without waiting
// on a FIFO or reading a device (internal/safefile). Errors name the file;
// those of a file that could be read wrap [ErrCertificate].
func LoadChain(path string) ([]*x509.Certificate, error) {
	data, err := safefile.ReadFile(path, limits.MaxCertFile)
	if err != nil {
		return nil, fmt.Errorf("signing: certificate chain %s: %w", path, err)
	}
	certs, err := ParseChain(data)
	if err != nil {
		return nil, fmt.Errorf("%w (%s)", err, path)
	}
	return certs, nil
}

// LoadCertificates reads every certificate of a certificate file by the
// one rule of [ParseCertificates] (PEM CERTIFICATE blocks, or one DER
// certificate), leniently, as trust anchors are read: a regular file of at
// most limits.MaxCertFile bytes, opened as [LoadChain] opens one. Errors
// name the file; those of a file that could be read wrap [ErrCertificate].
func LoadCertificates(path string) ([]*Certificate, error) {
	data, err := safefile.ReadFile(path, limits.MaxCertFile)
	if err != nil {
		return nil, fmt.Errorf("cannot read certificates %s: %w", path, err)
	}
	certs, err := ParseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("certificates %s: %w", path, err)
	}
	return certs, nil
}

// LoadCertificateFiles reads every certificate of several files
// ([LoadCertificates]), in order: the repeatable --certs flag.
func LoadCertificateFiles(paths []string) ([]*Certificate, error) {
	var out []*Certificate
	for _, p := range paths {
		cs, err := LoadCertificates(p)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// LoadX509CertificateFiles reads every certificate of several files, as
// [LoadCertificateFiles] does, for the APIs that take Go's
// *x509.Certificate (crypto/x509 chain checks, TLS): a certificate Go's
// crypto/x509 refuses is an error naming its file ([X509Certificates]).
func LoadX509CertificateFiles(paths []string) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	for _, p := range paths {
		cs, err := LoadCertificates(p)
		if err != nil {
			return nil, err
		}
		xs, err := X509Certificates(cs)
		if err != nil {
			return nil, fmt.Errorf("certificates %s: %w", p, err)
		}
		out = append(out, xs...)
	}
	return out, nil
}

// certificateDERs splits data into its certificates' DER by the rule of
// ParseCertificates.
func certificateDERs(data []byte) ([][]byte, error) {
	switch {
	case len(data) > limits.MaxCertFile:
		return nil, fmt.Errorf("%w: %d bytes, over the limit of %d", ErrCertificate, len(data), limits.MaxCertFile)
	case len(data) > 1 && data[0] == 0x30 && data[1] >= 0x81 && data[1] <= 0x84:
		// DER: a SEQUENCE with a long-form length (every certificate is
		// longer than 127 bytes), which no text starts with.
		// ParseCertificate refuses bytes after the certificate.
		return [][]byte{data}, nil
	case len(bytes.TrimSpace(data)) == 0:
		return nil, fmt.Errorf("%w: empty", ErrCertificate)
	}
	var ders [][]byte
	rest := data
	for {
		i := bytes.Index(rest, pemBegin)
		if i < 0 {
			if err := checkPEMText(rest); err != nil {
				return nil, err
			}
			break
		}
		if err := checkPEMText(rest[:i]); err != nil {
			return nil, err
		}
		n := len(ders) + 1
		b, after := pem.Decode(rest[i:])
		// pem.Decode skips a malformed block and returns the next one: a
		// BEGIN inside what it consumed is a block it left out.
		if b == nil || bytes.Contains(rest[i+1:len(rest)-len(after)], pemBegin) {
			return nil, fmt.Errorf("%w: PEM block #%d is malformed", ErrCertificate, n)
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%w: PEM block #%d is %q, not a CERTIFICATE (a certificate file holds only certificates)", ErrCertificate, n, b.Type)
		}
		if len(b.Headers) != 0 {
			return nil, fmt.Errorf("%w: PEM block #%d has headers (a CERTIFICATE has none)", ErrCertificate, n)
		}
		ders = append(ders, b.Bytes)
		rest = after
	}
	if len(ders) == 0 {
		return nil, fmt.Errorf("%w: neither a DER certificate nor PEM CERTIFICATE blocks", ErrCertificate)
	}
	return ders, nil
}

// checkPEMText checks text outside PEM blocks: UTF-8 without control
// characters other than tab, line feed and carriage return, and without an
// END line of a block that did not begin.
func checkPEMText(text []byte) error {
	if bytes.Contains(text, pemEnd) {
		return fmt.Errorf("%w: a PEM END line without its BEGIN line", ErrCertificate)
	}
	for len(text) > 0 {
		r, size := utf8.DecodeRune(text)
		if r == utf8.RuneError && size <= 1 {
			return fmt.Errorf("%w: bytes that are neither text nor PEM blocks", ErrCertificate)
		}
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return fmt.Errorf("%w: control character %U outside the PEM blocks", ErrCertificate, r)
		}
		text = text[size:]
	}
	return nil
}
