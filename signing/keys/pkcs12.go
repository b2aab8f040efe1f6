package keys

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
	"software.sslmate.com/src/go-pkcs12"

	"github.com/codesignval/csv/internal/panicerr"
)

// maxPKCS12Depth bounds the nesting the iteration-count scan of a PKCS#12
// file descends (a PFX nests six levels deep where openssl writes it).
const maxPKCS12Depth = 24

// pkcs12IterationCap is maxPBKDF2Iterations; the fuzz target lowers it,
// so that its executions are not spent deriving keys.
var pkcs12IterationCap = maxPBKDF2Iterations

// ChainSigner is a signer that carries its certificate chain, leaf first:
// what [LoadSigner] returns for a PKCS#12 (.pfx, .p12) key file.
type ChainSigner interface {
	crypto.Signer
	Chain() []*x509.Certificate
}

type pfxSigner struct {
	crypto.Signer
	chain []*x509.Certificate
}

func (s *pfxSigner) Chain() []*x509.Certificate { return s.chain }

// isPKCS12 reports whether data looks like a DER PFX rather than PEM: a
// SEQUENCE, which no PEM file starts with.
func isPKCS12(data []byte) bool {
	return len(data) > 1 && data[0] == 0x30 && data[1] >= 0x80
}

// ParsePKCS12 opens a PKCS#12 (PFX) key file, as Windows, openssl pkcs12
// -export and Java's keytool write it, with software.sslmate.com's
// go-pkcs12: the private key, and its certificate chain, leaf first (the
// certificate of the key, then each certificate's issuer among the
// others; certificates that do not continue the chain are left out). The
// password is asked for only if the file does not open with the empty
// password (openssl pkcs12 -passout pass:). A wrong password is
// [ErrWrongPassword]; a file that is not a PFX, or one without a key or
// without the key's certificate, [ErrKeyFile].
//
// Key-derivation work is capped before the library runs: every iteration
// count the file shows outside its encrypted parts (the MAC's, and the
// PBES1/PBES2 parameters of each encrypted bag and each shrouded key) must
// be at most 10 million, as for encrypted PEM keys.
func ParsePKCS12(data []byte, password func() ([]byte, error)) (_ ChainSigner, err error) {
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: PKCS#12 file of %d bytes (at most %d)", ErrKeyFile, len(data), maxKeyFile)
	}
	if err := checkPKCS12Work(cryptobyte.String(data), 0); err != nil {
		return nil, err
	}
	decode := func(pw string) (k any, leaf *x509.Certificate, cas []*x509.Certificate, err error) {
		defer func() {
			if r := recover(); r != nil {
				err = fmt.Errorf("%w: PKCS#12: the parser failed (%w)", ErrKeyFile, panicerr.New(r))
			}
		}()
		return pkcs12.DecodeChain(data, pw)
	}
	key, leaf, cas, err := decode("")
	if errors.Is(err, pkcs12.ErrIncorrectPassword) || errors.Is(err, pkcs12.ErrDecryption) {
		pw, perr := password()
		if perr != nil {
			return nil, perr
		}
		key, leaf, cas, err = decode(string(pw))
	}
	switch {
	case errors.Is(err, pkcs12.ErrIncorrectPassword), errors.Is(err, pkcs12.ErrDecryption):
		return nil, ErrWrongPassword
	case errors.Is(err, ErrKeyFile):
		return nil, err
	case err != nil:
		return nil, fmt.Errorf("%w: PKCS#12: %w", ErrKeyFile, err)
	}
	signer, err := checkKey(key)
	if err != nil {
		return nil, err
	}
	certs := append([]*x509.Certificate{leaf}, cas...)
	chain, err := orderChain(signer, certs)
	if err != nil {
		return nil, err
	}
	return &pfxSigner{Signer: signer, chain: chain}, nil
}

// orderChain puts the key's certificate first, then its issuer, and so on.
func orderChain(key crypto.Signer, certs []*x509.Certificate) ([]*x509.Certificate, error) {
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	var chain []*x509.Certificate
	for _, c := range certs {
		if ok && pub.Equal(c.PublicKey) {
			chain = append(chain, c)
			break
		}
	}
	if len(chain) == 0 {
		return nil, fmt.Errorf("%w: PKCS#12: no certificate of the private key among its %d certificates", ErrKeyFile, len(certs))
	}
	used := map[*x509.Certificate]bool{chain[0]: true}
	for len(chain) < len(certs) {
		top := chain[len(chain)-1]
		if bytes.Equal(top.RawIssuer, top.RawSubject) {
			break
		}
		var next *x509.Certificate
		for _, c := range certs {
			if !used[c] && bytes.Equal(top.RawIssuer, c.RawSubject) {
				next = c
				break
			}
		}
		if next == nil {
			break
		}
		used[next] = true
		chain = append(chain, next)
	}
	return chain, nil
}

// checkPKCS12Work walks the DER of a PFX, into constructed values and into
// OCTET STRINGs that hold DER, and refuses an iteration count over the cap:
// an INTEGER that follows an OCTET STRING (the salt) in a SEQUENCE, as in
// MacData, PBEParameter (PKCS#12 PBES1) and PBKDF2-params (PBES2, PBMAC1).
// Each level re-reads the bytes of the one above, so the work is at most
// maxPKCS12Depth times the file's size.
func checkPKCS12Work(s cryptobyte.String, depth int) error {
	if depth > maxPKCS12Depth {
		return nil // nothing the library reads lies this deep
	}
	afterSalt := false
	for !s.Empty() {
		var v cryptobyte.String
		var tag cbasn1.Tag
		if !s.ReadAnyASN1(&v, &tag) {
			return nil // not DER: the library refuses it
		}
		switch {
		case tag == cbasn1.INTEGER && afterSalt:
			// v is the INTEGER's content, big-endian two's complement.
			for len(v) > 1 && v[0] == 0 {
				v = v[1:]
			}
			if len(v) > 4 {
				return fmt.Errorf("%w: PKCS#12: an iteration count of %d bytes (at most %d)", ErrKeyFile, len(v), maxPBKDF2Iterations)
			}
			var n int64
			for _, b := range v {
				n = n<<8 | int64(b)
			}
			if n > int64(pkcs12IterationCap) {
				return fmt.Errorf("%w: PKCS#12: iteration count %d (at most %d)", ErrKeyFile, n, pkcs12IterationCap)
			}
		case tag == cbasn1.SEQUENCE:
			if err := checkPBEParams(v); err != nil {
				return err
			}
			if err := checkPKCS12Work(v, depth+1); err != nil {
				return err
			}
		case tag == cbasn1.OCTET_STRING:
			if err := checkPKCS12Work(v, depth+1); err != nil {
				return err
			}
		case tag&0x20 != 0:
			if err := checkPKCS12Work(v, depth+1); err != nil {
				return err
			}
		}
		afterSalt = tag == cbasn1.OCTET_STRING
	}
	return nil
}

// Password-based algorithms whose parameters carry an iteration count:
// PKCS#12's PBE schemes (1.2.840.113549.1.12.1.*), PBES2, PBKDF2 and
// PBMAC1 (RFC 8018, RFC 9579).
var (
	oidPKCS12PBE = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 1}
	oidPBMAC1    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
)

// checkPBEParams reads seq (a SEQUENCE's content) as an
// AlgorithmIdentifier and, if it names a password-based algorithm, caps
// the iteration count of its parameters, read as go-pkcs12 reads them
// (the salt of PBKDF2-params may be any value, which the OCTET STRING
// rule of checkPKCS12Work would not see).
func checkPBEParams(seq cryptobyte.String) error {
	var oid asn1.ObjectIdentifier
	if !seq.ReadASN1ObjectIdentifier(&oid) {
		return nil
	}
	params := []byte(seq)
	var iterations int64
	switch {
	case len(oid) == len(oidPKCS12PBE)+1 && oid[:len(oidPKCS12PBE)].Equal(oidPKCS12PBE):
		var p struct {
			Salt       []byte
			Iterations int64
		}
		if _, err := asn1.Unmarshal(params, &p); err != nil {
			return nil
		}
		iterations = p.Iterations
	case oid.Equal(oidPBKDF2):
		var p struct {
			Salt       asn1.RawValue
			Iterations int64
		}
		if _, err := asn1.Unmarshal(params, &p); err != nil {
			return nil
		}
		iterations = p.Iterations
	case oid.Equal(oidPBES2), oid.Equal(oidPBMAC1):
		// Their key-derivation AlgorithmIdentifier (PBKDF2) is a
		// SEQUENCE inside, which the walk reaches.
		return nil
	default:
		return nil
	}
	if iterations > int64(pkcs12IterationCap) {
		return fmt.Errorf("%w: PKCS#12: iteration count %d (at most %d)", ErrKeyFile, iterations, pkcs12IterationCap)
	}
	return nil
}
