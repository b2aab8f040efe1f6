package cms

import (
	"bytes"
	"fmt"
	"math/big"
	"slices"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// NULL is the DER NULL, the parameters digest and RSA algorithms carry.
var NULL = []byte{0x05, 0x00}

// Marshal adds the AlgorithmIdentifier to b: its OID and Params as they
// are (nil Params: none).
func (a AlgorithmIdentifier) Marshal(b *cryptobyte.Builder) {
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(a.OID)
		b.AddBytes(a.Params)
	})
}

// NewAttribute encodes Attribute ::= SEQUENCE { type, SET OF values },
// each value a DER element.
func NewAttribute(t OID, values ...[]byte) ([]byte, error) {
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddBytes(t)
			b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
				for _, v := range values {
					b.AddBytes(v)
				}
			})
		})
	})
}

// SignedAttributes returns the DER SET OF attrs (encoded Attributes),
// sorted by encoding as DER requires: what a signature over signed
// attributes is made over. [SignerInfoTemplate] carries it re-tagged.
func SignedAttributes(attrs ...[]byte) ([]byte, error) {
	list := slices.Clone(attrs)
	slices.SortFunc(list, bytes.Compare)
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
			for _, der := range list {
				b.AddBytes(der)
			}
		})
	})
}

// SignerInfoTemplate is a SignerInfo to encode with [MarshalSignerInfo].
type SignerInfoTemplate struct {
	// Version is 1 for a signer named by issuer and serial number, 3 by
	// subject key identifier (RFC 5652 5.3).
	Version int64
	// Issuer (a DER Name) and SerialNumber name the signer's certificate,
	// or SubjectKeyID does when set.
	Issuer       []byte
	SerialNumber *big.Int
	SubjectKeyID []byte
	// DigestAlgorithm and SignatureAlgorithm are encoded as they are.
	DigestAlgorithm    AlgorithmIdentifier
	SignatureAlgorithm AlgorithmIdentifier
	// SignedAttributes is the DER SET OF the signed attributes (as
	// [SignedAttributes] returns it), nil for none.
	SignedAttributes []byte
	Signature        []byte
	// UnsignedAttributes are encoded Attributes, in order.
	UnsignedAttributes [][]byte
}

// MarshalSignerInfo encodes a SignerInfo.
func MarshalSignerInfo(t SignerInfoTemplate) ([]byte, error) {
	var signed []byte
	if t.SignedAttributes != nil {
		s := cryptobyte.String(t.SignedAttributes)
		var contents cryptobyte.String
		if !s.ReadASN1(&contents, cbasn1.SET) || !s.Empty() {
			return nil, fmt.Errorf("cms: the signed attributes are not a DER SET")
		}
		signed = contents
	}
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1Int64(t.Version)
			if t.SubjectKeyID != nil {
				b.AddASN1(cbasn1.Tag(0).ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(t.SubjectKeyID) })
			} else {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
					b.AddBytes(t.Issuer)
					b.AddASN1BigInt(t.SerialNumber)
				})
			}
			t.DigestAlgorithm.Marshal(b)
			if t.SignedAttributes != nil {
				b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) { b.AddBytes(signed) })
			}
			t.SignatureAlgorithm.Marshal(b)
			b.AddASN1OctetString(t.Signature)
			if len(t.UnsignedAttributes) > 0 {
				b.AddASN1(cbasn1.Tag(1).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
					for _, a := range t.UnsignedAttributes {
						b.AddBytes(a)
					}
				})
			}
		})
	})
}

// SignedDataTemplate is a SignedData to encode with [MarshalSignedData].
type SignedDataTemplate struct {
	Version          int64
	DigestAlgorithms []AlgorithmIdentifier
	ContentType      OID
	// Content is the encapsulated content's DER element (put in [0]
	// EXPLICIT), nil for detached content.
	Content []byte
	// Certificates are DER certificates; nil leaves the field out.
	Certificates [][]byte
	// SignerInfos are encoded SignerInfos (MarshalSignerInfo).
	SignerInfos [][]byte
}

// MarshalSignedData encodes a ContentInfo holding the SignedData.
func MarshalSignedData(t SignedDataTemplate) ([]byte, error) {
	explicit0 := cbasn1.Tag(0).Constructed().ContextSpecific()
	return build(func(b *cryptobyte.Builder) {
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // ContentInfo
			b.AddBytes(OIDSignedData)
			b.AddASN1(explicit0, func(b *cryptobyte.Builder) {
				b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // SignedData
					b.AddASN1Int64(t.Version)
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						for _, a := range t.DigestAlgorithms {
							a.Marshal(b)
						}
					})
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) { // encapContentInfo
						b.AddBytes(t.ContentType)
						if t.Content != nil {
							b.AddASN1(explicit0, func(b *cryptobyte.Builder) { b.AddBytes(t.Content) })
						}
					})
					if t.Certificates != nil {
						b.AddASN1(explicit0, func(b *cryptobyte.Builder) {
							for _, c := range t.Certificates {
								b.AddBytes(c)
							}
						})
					}
					b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
						for _, si := range t.SignerInfos {
							b.AddBytes(si)
						}
					})
				})
			})
		})
	})
}

func build(f func(b *cryptobyte.Builder)) ([]byte, error) {
	b := cryptobyte.NewBuilder(nil)
	f(b)
	der, err := b.Bytes()
	if err != nil {
		return nil, fmt.Errorf("cms: encoding: %w", err)
	}
	return der, nil
}
