package msi_test

import (
	"bytes"
	"crypto"
	"io"
	"testing"

	"github.com/codesignval/csv/internal/binfmt/cfb"
	"github.com/codesignval/csv/internal/testmsi"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode/msi"
)

// TestExSizeIsTheSignatures: \x05MsiDigitalSignatureEx holds the pre-hash
// with the signature's own algorithm. A package signed with SHA-256 whose
// stream was replaced by the SHA-1 pre-hash (a true one, of another
// algorithm) is refused by osslsigncode ("Incorrect
// MsiDigitalSignatureEx stream data length") and must not verify in csv,
// which hashed its own SHA-256 pre-hash in rather than the stored bytes.
func TestExSizeIsTheSignatures(t *testing.T) {
	p := newPKI(t)
	signed := testmsi.Sign(t, p.files, build(t), "-add-msi-dse")
	pkg, err := msi.Parse(bytes.NewReader(signed), int64(len(signed)))
	if err != nil {
		t.Fatal(err)
	}
	sha1 := pkg.PreHash(crypto.SHA1)
	root := pkg.CFB.Tree()
	for _, c := range root.Children {
		if c.Name == msi.SignatureExStream {
			c.Size = int64(len(sha1))
			c.Open = func() (io.Reader, error) { return bytes.NewReader(sha1), nil }
		}
	}
	var out bytes.Buffer
	if _, err := cfb.Write(&out, root, pkg.CFB.SectorSize); err != nil {
		t.Fatal(err)
	}
	data := out.Bytes()
	if ok, _, msg := testmsi.Verify(t, p.files, data); ok {
		t.Fatalf("osslsigncode verifies it:\n%s", msg)
	}
	_, _, sigs, err := inspect(t, data, p.certs)
	if err == nil {
		for _, s := range sigs {
			if s.Verified() {
				t.Fatalf("csv verifies a signature osslsigncode refuses")
			}
		}
	} else if !errorsIsMalformed(err) {
		t.Fatalf("err %v, want malformed", err)
	}
}

func errorsIsMalformed(err error) bool {
	_, ok := err.(*signing.MalformedError)
	return ok || bytes.Contains([]byte(err.Error()), []byte("MsiDigitalSignatureEx"))
}
