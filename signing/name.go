package signing

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
)

// opensslNames are the short names openssl gives the attribute types of
// distinguished names (its objects.txt), for the types a certificate's
// name commonly holds. A type not listed prints as its dotted OID with the
// value's DER in hex (#...), as both openssl and RFC 4514 do.
var opensslNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.13":                   "description",
	"2.5.4.15":                   "businessCategory",
	"2.5.4.17":                   "postalCode",
	"2.5.4.41":                   "name",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"2.5.4.97":                   "organizationIdentifier",
	"1.2.840.113549.1.9.1":       "emailAddress",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.3.6.1.4.1.311.60.2.1.1":   "jurisdictionL",
	"1.3.6.1.4.1.311.60.2.1.2":   "jurisdictionST",
	"1.3.6.1.4.1.311.60.2.1.3":   "jurisdictionC",
}

// NameString renders a distinguished name for people, the one way csv
// prints certificate subjects and issuers: as openssl x509 -nameopt
// RFC2253 does (the most specific attribute first, separated by commas,
// openssl's short names: "emailAddress=ops@example.com,CN=Build
// Signing,O=Example,C=DE"), where pkix.Name.String prints attribute types
// it does not know as dotted OIDs with hex values
// ("1.2.840.113549.1.9.1=#0c14..."). The attributes are those the
// certificate carries, in its order (n.Names, when it was parsed), not
// pkix.Name's fixed order. Values are escaped as RFC 4514 asks (,+"\<>;
// and a leading # or space, a trailing space) and control characters as
// \XX; other characters print as they are (openssl's RFC2253 option
// escapes non-ASCII bytes too). Values that are not strings print as #
// and their DER in hex.
func NameString(n pkix.Name) string {
	atvs := n.Names
	if len(atvs) == 0 {
		for _, rdn := range n.ToRDNSequence() {
			atvs = append(atvs, rdn...)
		}
	}
	parts := make([]string, 0, len(atvs))
	for i := len(atvs) - 1; i >= 0; i-- {
		parts = append(parts, attributeString(atvs[i]))
	}
	return strings.Join(parts, ",")
}

func attributeString(atv pkix.AttributeTypeAndValue) string {
	oid := atv.Type.String()
	name, known := opensslNames[oid]
	s, isString := atv.Value.(string)
	if !known || !isString {
		if !known {
			name = oid
		}
		der, err := asn1.Marshal(atv.Value)
		if err != nil {
			return name + "=#"
		}
		return name + "=#" + hex.EncodeToString(der)
	}
	return name + "=" + escapeNameValue(s)
}

func escapeNameValue(s string) string {
	var b strings.Builder
	for i, r := range s {
		switch {
		case strings.ContainsRune(",+\"\\<>;", r),
			i == 0 && (r == ' ' || r == '#'),
			i == len(s)-1 && r == ' ':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\%02X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}
