package appx

import (
	"bytes"
	"encoding/asn1"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// publisher returns the Publisher attribute of the manifest's Identity
// element (a child of its root, Package or Bundle), read strictly: no
// directives, at most a few levels deep before it is found.
func publisher(b []byte) (string, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	depth := 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return "", nil
		}
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.Directive:
			return "", errors.New("a document type declaration or other directive")
		case xml.StartElement:
			depth++
			if depth > 64 {
				return "", errors.New("elements nested more than 64 deep")
			}
			if depth == 2 && t.Name.Local == "Identity" {
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "Publisher" {
						return a.Value, nil
					}
				}
				return "", errors.New("the Identity element has no Publisher")
			}
		case xml.EndElement:
			depth--
		}
	}
}

// attributeTypes are the names a Publisher string gives attribute types
// (Windows' CertNameToStr X.500 names), by OID.
var attributeTypes = map[string]string{
	"CN": "2.5.4.3", "SN": "2.5.4.4", "SERIALNUMBER": "2.5.4.5", "C": "2.5.4.6",
	"L": "2.5.4.7", "S": "2.5.4.8", "ST": "2.5.4.8", "STREET": "2.5.4.9",
	"O": "2.5.4.10", "OU": "2.5.4.11", "T": "2.5.4.12", "TITLE": "2.5.4.12",
	"G": "2.5.4.42", "GN": "2.5.4.42", "I": "2.5.4.43", "POSTALCODE": "2.5.4.17",
	"E": "1.2.840.113549.1.9.1", "DC": "0.9.2342.19200300.100.1.25",
}

type attr struct{ oid, value string }

// parsePublisher splits a Publisher string ("CN=Contoso, O=Contoso,
// C=US"; a value with a separator in it is quoted, "" a quote in it)
// into its attributes, in order; an attribute type may also be written
// as "OID.2.5.4.3" or a dotted OID.
func parsePublisher(s string) ([]attr, error) {
	var out []attr
	for s = strings.TrimSpace(s); s != ""; {
		k, rest, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("%q has no '='", s)
		}
		k = strings.ToUpper(strings.TrimSpace(k))
		oid, ok := attributeTypes[k]
		if !ok {
			oid = strings.TrimPrefix(k, "OID.")
			if _, err := parseOID(oid); err != nil {
				return nil, fmt.Errorf("unknown attribute type %q", k)
			}
		}
		rest = strings.TrimLeft(rest, " ")
		var v strings.Builder
		if strings.HasPrefix(rest, `"`) {
			i := 1
			for ; i < len(rest); i++ {
				if rest[i] == '"' {
					if i+1 < len(rest) && rest[i+1] == '"' {
						v.WriteByte('"')
						i++
						continue
					}
					break
				}
				v.WriteByte(rest[i])
			}
			if i >= len(rest) {
				return nil, errors.New("an unterminated quoted value")
			}
			rest = strings.TrimLeft(rest[i+1:], " ")
			if rest != "" && rest[0] != ',' && rest[0] != ';' {
				return nil, errors.New("text after a quoted value")
			}
		} else {
			i := strings.IndexAny(rest, ",;")
			if i < 0 {
				i = len(rest)
			}
			v.WriteString(strings.TrimSpace(rest[:i]))
			rest = rest[i:]
		}
		out = append(out, attr{oid, v.String()})
		if rest != "" {
			rest = rest[1:]
		}
		s = strings.TrimSpace(rest)
	}
	return out, nil
}

func parseOID(s string) (asn1.ObjectIdentifier, error) {
	var oid asn1.ObjectIdentifier
	for _, p := range strings.Split(s, ".") {
		n := 0
		if p == "" || len(p) > 9 {
			return nil, errors.New("bad OID")
		}
		for _, c := range p {
			if c < '0' || c > '9' {
				return nil, errors.New("bad OID")
			}
			n = n*10 + int(c-'0')
		}
		oid = append(oid, n)
	}
	if len(oid) < 2 {
		return nil, errors.New("bad OID")
	}
	return oid, nil
}

// subjectAttrs reads a certificate's raw subject (a DER RDNSequence) into
// its attributes in Windows' order: the last RDN first, as CertNameToStr
// writes it with CERT_NAME_STR_REVERSE_FLAG ("CN=..., O=..., C=US").
// Values of the string types are compared as text.
func subjectAttrs(raw []byte) ([]attr, bool) {
	in := cryptobyte.String(raw)
	var seq cryptobyte.String
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !in.Empty() {
		return nil, false
	}
	var rdns [][]attr
	for !seq.Empty() {
		var set cryptobyte.String
		if !seq.ReadASN1(&set, cbasn1.SET) {
			return nil, false
		}
		var rdn []attr
		for !set.Empty() {
			var atv cryptobyte.String
			var oid asn1.ObjectIdentifier
			var tag cbasn1.Tag
			var val cryptobyte.String
			if !set.ReadASN1(&atv, cbasn1.SEQUENCE) || !atv.ReadASN1ObjectIdentifier(&oid) || !atv.ReadAnyASN1(&val, &tag) || !atv.Empty() {
				return nil, false
			}
			var s string
			switch tag {
			case cbasn1.UTF8String, cbasn1.PrintableString, cbasn1.IA5String, cbasn1.T61String:
				s = string(val)
			case cbasn1.Tag(30): // BMPString
				if len(val)%2 != 0 {
					return nil, false
				}
				u := make([]rune, 0, len(val)/2)
				for i := 0; i < len(val); i += 2 {
					u = append(u, rune(val[i])<<8|rune(val[i+1]))
				}
				s = string(u)
			default:
				s = fmt.Sprintf("#%x", []byte(val))
			}
			rdn = append(rdn, attr{oid.String(), s})
		}
		rdns = append(rdns, rdn)
	}
	var out []attr
	for i := len(rdns) - 1; i >= 0; i-- {
		out = append(out, rdns[i]...)
	}
	return out, true
}

// PublisherMatches reports whether a manifest's Publisher names the
// certificate subject rawSubject (DER): the same attributes with the same
// values, in Windows' order (the subject's last RDN first).
func PublisherMatches(publisher string, rawSubject []byte) bool {
	want, err := parsePublisher(publisher)
	if err != nil {
		return false
	}
	got, ok := subjectAttrs(rawSubject)
	if !ok || len(got) != len(want) || len(got) == 0 {
		return false
	}
	for i := range got {
		if got[i] != want[i] {
			return false
		}
	}
	return true
}
