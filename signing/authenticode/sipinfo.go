package authenticode

import (
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/signing/cms"
)

// OIDSpcSipInfo is SPC_SIPINFO_OBJID, the data type the signatures of
// formats hashed by a subject interface package name (scripts, installers).
var OIDSpcSipInfo = cms.NewOID(1, 3, 6, 1, 4, 1, 311, 2, 1, 30)

// SipInfo returns the indirect data naming the SIP guid, as signtool and
// osslsigncode write it: SpcSipInfo ::= SEQUENCE { dwSIPversion INTEGER,
// gSIPguid OCTET STRING, five INTEGERs 0 }.
func SipInfo(version int64, guid []byte) IndirectData {
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddASN1Int64(version)
		b.AddASN1OctetString(guid)
		for range 5 {
			b.AddASN1Int64(0)
		}
	})
	return IndirectData{Type: OIDSpcSipInfo, Value: b.BytesOrPanic()}
}

// SipGUID returns the SIP guid data names: ok is false when its type is
// not SPC_SIPINFO_OBJID (typeOK false) or its SpcSipInfo does not parse.
func SipGUID(data IndirectData) (guid []byte, typeOK, ok bool) {
	if !data.Type.Equal(OIDSpcSipInfo) {
		return nil, false, false
	}
	in := cryptobyte.String(data.Value)
	var seq, g cryptobyte.String
	var version int64
	if !in.ReadASN1(&seq, cbasn1.SEQUENCE) || !seq.ReadASN1Integer(&version) || !seq.ReadASN1(&g, cbasn1.OCTET_STRING) {
		return nil, true, false
	}
	return g, true, true
}
