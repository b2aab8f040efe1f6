package facts

import (
	"errors"
	"io"
)

// Hooks for the tests of package facts_test (decode_test.go).

// DecodeFast decodes a record line with the hand-written decoder.
func DecodeFast(line []byte) (*Record, error) {
	var l lexer
	r := new(Record)
	if err := l.decodeRecord(line, r); err != nil {
		return nil, err
	}
	return r, nil
}

// DecodeReference decodes a record line with encoding/json (strict).
func DecodeReference(line []byte) (*Record, error) {
	r := new(Record)
	if err := strict(line, r); err != nil {
		return nil, err
	}
	return r, nil
}

// CertificateLine is a certificate line's content.
type CertificateLine = certificateLine

// DecodeCertificateFast and DecodeCertificateReference decode a
// certificate line.
func DecodeCertificateFast(line []byte) (*CertificateLine, error) {
	var l lexer
	c := new(certificateLine)
	if err := l.decodeCertificateLine(line, c); err != nil {
		return nil, err
	}
	return c, nil
}

func DecodeCertificateReference(line []byte) (*CertificateLine, error) {
	c := new(certificateLine)
	if err := strict(line, c); err != nil {
		return nil, err
	}
	return c, nil
}

// MemberError says whether err is a member name the hand-written decoder
// refuses where encoding/json is lenient: its name, and whether it
// repeats.
func MemberError(err error) (name string, repeated, ok bool) {
	if e, is := err.(*memberError); is {
		return e.name, e.repeated, true
	}
	return "", false, false
}

// IsCapError says whether err is a cap of internal/limits found while
// scanning.
func IsCapError(err error) bool {
	_, ok := err.(*capError)
	return ok
}

// Check checks a decoded record as a Decoder does (the certificates it
// names must be in certs' table, defined before line).
func (d *Decoder) Check(r *Record, line int) error {
	_, err := r.subject(d.cache, certRefs{d.certs, line})
	return err
}

// CheckCertificate checks a certificate line's certificate as a Reader
// does.
func (d *Decoder) CheckCertificate(c *Certificate) error {
	if c.SHA256 != "" {
		return errors.New("a certificate line without the certificate in full")
	}
	_, err := c.resolve(d.cache, certRefs{d.certs, 1 << 30})
	return err
}

// MaxDigest is the longest digest a Subject holds.
const MaxDigest = maxDigest

// NewReaderLimit is NewReader with a cap on what a gzip-compressed file
// decompresses to.
func NewReaderLimit(r io.Reader, name string, maxDecompressed int64) (*Reader, error) {
	return newReader(r, name, maxDecompressed)
}
