package bootlog_test

import (
	"bytes"
	"crypto/sha1" //nolint:gosec // a SHA1 bank's digest
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"testing"

	"github.com/codesignval/csv/attest"
	"github.com/codesignval/csv/attest/bootlog"
	"github.com/codesignval/csv/attest/eventlog"
	"github.com/codesignval/csv/internal/testca"
)

// TestWrite: the log written reads back through the verifier's own parser
// and boot state extraction as the boot it describes (Secure Boot on, the
// databases given, the application's digests and file name), and replays
// to the PCR values the Writer says a TPM holds, in every bank set.
func TestWrite(t *testing.T) {
	ca := testca.New(t)
	db := ca.Leaf(t, testca.LeafOptions{CommonName: "Lab db"})
	s256, s1, s384 := sha256.Sum256([]byte("app")), sha1.Sum([]byte("app")), sha512.Sum384([]byte("app")) //nolint:gosec
	revoked := sha256.Sum256([]byte("revoked"))
	for _, banks := range [][]eventlog.HashAlg{{eventlog.SHA256}, {eventlog.SHA1, eventlog.SHA256}, {eventlog.SHA256, eventlog.SHA384}} {
		w, err := bootlog.Write(bootlog.Options{Banks: banks, Firmware: "lab firmware", SecureBoot: true,
			PK: []*x509.Certificate{ca.Root.Cert}, KEK: []*x509.Certificate{ca.Intermediate.Cert}, DB: []*x509.Certificate{db.Cert},
			DBX:  [][]byte{revoked[:]},
			Apps: []bootlog.App{{SHA256: s256[:], SHA1: s1[:], SHA384: s384[:], Path: `\EFI\BOOT\BOOTX64.EFI`}}})
		if err != nil {
			t.Fatal(err)
		}
		in, err := attest.Inspect(w.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		strict := in.Replay.Strict()
		for _, b := range banks {
			for p := 0; p < eventlog.NumPCRs; p++ {
				if got, want := strict.Get(b, p), w.PCRs().Get(b, p); !bytes.Equal(got, want) {
					t.Errorf("%v: %s PCR %d replays to %x, the writer says %x", banks, b, p, got, want)
				}
			}
		}
		bs := in.Boot
		if !bs.SecureBoot.Enabled || bs.SecureBoot.Problem != "" {
			t.Errorf("%v: secure boot %+v", banks, bs.SecureBoot)
		}
		for _, c := range []struct {
			name string
			db   *attest.SignatureDB
			der  []byte
		}{{"PK", bs.PK, ca.Root.Cert.Raw}, {"KEK", bs.KEK, ca.Intermediate.Cert.Raw}, {"db", bs.DB, db.Cert.Raw}} {
			if c.db == nil || len(c.db.CertDER) != 1 || !bytes.Equal(c.db.CertDER[0], c.der) {
				t.Errorf("%v: %s %+v", banks, c.name, c.db)
			}
		}
		if bs.DBX == nil || len(bs.DBX.SHA256) != 1 || !bytes.Equal(bs.DBX.SHA256[0], revoked[:]) {
			t.Errorf("%v: dbx %+v", banks, bs.DBX)
		}
		if len(bs.Components) != 1 || bs.Components[0].Name != `\EFI\BOOT\BOOTX64.EFI` || !bytes.Equal(bs.Components[0].AuthenticodeSHA256, s256[:]) {
			t.Errorf("%v: components %+v", banks, bs.Components)
		}
		if len(bs.Authorities) != 1 || len(bs.Notes) != 0 {
			t.Errorf("%v: authorities %+v, notes %q", banks, bs.Authorities, bs.Notes)
		}
	}
	if _, err := bootlog.Write(bootlog.Options{Banks: []eventlog.HashAlg{eventlog.SHA1}, Apps: []bootlog.App{{SHA256: s256[:]}}}); err == nil {
		t.Error("an app without a digest for the log's bank was written")
	}
}

// TestImageLoadEvent: without a path the device path is the end node
// alone (what the tests' logs always held).
func TestImageLoadEvent(t *testing.T) {
	if b := bootlog.ImageLoadEvent(""); len(b) != 36 || !bytes.Equal(b[24:], []byte{4, 0, 0, 0, 0, 0, 0, 0, 0x7f, 0xff, 4, 0}) {
		t.Errorf("%x", b)
	}
}
