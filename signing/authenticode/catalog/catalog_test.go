package catalog_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/codesignval/csv/internal/limits"
	"github.com/codesignval/csv/internal/testbin"
	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/catalog"
	"github.com/codesignval/csv/signing/authenticode/pe"
	"github.com/codesignval/csv/signing/cms"
)

// microsoftCatalog returns hyperv.cat, a catalog Microsoft signed in 2010
// (SHA1 members, a legacy countersignature), which sassoftware/relic ships
// in its functional tests; the test skips where no copy of relic is in the
// module cache.
func microsoftCatalog(t *testing.T) []byte {
	t.Helper()
	cache, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("no module cache: %v", err)
	}
	matches, _ := filepath.Glob(filepath.Join(strings.TrimSpace(string(cache)), "github.com", "sassoftware", "relic*", "functest", "packages", "hyperv.cat"))
	if len(matches) == 0 {
		t.Skip("hyperv.cat (sassoftware/relic's functional tests) is not in the module cache")
	}
	der, err := os.ReadFile(matches[0])
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// TestMicrosoftCatalog reads and verifies a catalog Microsoft made and
// signed: 22 members (12 PE images and 10 flat files, counted with openssl asn1parse), the OSAttr catalog
// attribute, a SHA1 signature that verifies with a legacy timestamp.
func TestMicrosoftCatalog(t *testing.T) {
	der := microsoftCatalog(t)
	c, err := catalog.Parse(der)
	if err != nil {
		t.Fatal(err)
	}
	if c.Version != 1 || len(c.Members) != 22 {
		t.Fatalf("version %d, %d members; want 1 and 22", c.Version, len(c.Members))
	}
	var pe, flat int
	for _, m := range c.Members {
		switch {
		case m.DataType.Equal(catalog.OIDSpcPEImageData) && m.SIP == catalog.SIPPE:
			pe++
		case m.DataType.Equal(catalog.OIDSpcCabData) && m.SIP == catalog.SIPFlat:
			flat++
		}
		if m.Algorithm != crypto.SHA1 || !strings.EqualFold(m.Tag, hexUpper(m.Digest)) {
			t.Errorf("member %s: %v digest %X, want SHA1 and the tag", m.Tag, m.Algorithm, m.Digest)
		}
	}
	if pe != 12 || flat != 10 {
		t.Errorf("%d PE and %d flat members, want 12 and 10", pe, flat)
	}
	if len(c.Attributes) != 1 || c.Attributes[0].Name != "OSAttr" || c.Attributes[0].Value != "2:5.1,2:5.2,2:6.0,2:6.1" {
		t.Errorf("attributes %+v, want OSAttr 2:5.1,2:5.2,2:6.0,2:6.1", c.Attributes)
	}
	sigs, v, err := c.Verify(authenticode.VerifyOptions{})
	if err != nil {
		t.Fatalf("Microsoft's catalog does not verify: %v", err)
	}
	// The legacy countersignature is read (its time is the signing
	// time); csv's one TSA rule refuses its 2010 certificate, whose EKU is
	// not critical, as it does on PE files.
	if len(sigs) != 1 || sigs[0].DigestAlgorithm != crypto.SHA1 || sigs[0].Timestamp == nil ||
		!sigs[0].Timestamp.Time.Equal(time.Date(2010, 11, 20, 19, 35, 21, 0, time.UTC)) {
		t.Fatalf("signature %+v: want one SHA1 signature with a timestamp of 2010-11-20 19:35:21", sigs[0])
	}
	if cn := v.Signer().Chains[0][0].Subject.CommonName; !strings.Contains(cn, "Microsoft") {
		t.Errorf("signer %q", cn)
	}
	m := c.Members[0]
	if got := v.Lookup(crypto.SHA1, m.Digest); len(got) != 1 || got[0].Tag != m.Tag {
		t.Errorf("Lookup of member 0 = %v", got)
	}
	if got := v.Lookup(crypto.SHA256, m.Digest); got != nil {
		t.Errorf("Lookup with the wrong algorithm = %v", got)
	}
}

func hexUpper(b []byte) string { return strings.ToUpper(cmsHex(b)) }

func cmsHex(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 2*len(b))
	for i, c := range b {
		out[2*i], out[2*i+1] = digits[c>>4], digits[c&15]
	}
	return string(out)
}

// TestVerifyRefuses: what admits nothing.
func TestVerifyRefuses(t *testing.T) {
	p := newPKI(t)
	a := testbin.PE(testbin.PEOptions{})
	e := entry(t, "a.exe", a, crypto.SHA256)
	good := p.signedCatalog(t, 2, e)

	t.Run("unsigned", func(t *testing.T) {
		ctl, err := catalog.Build([]catalog.Entry{e}, catalog.BuildOptions{})
		if err != nil {
			t.Fatal(err)
		}
		der, err := catalog.Unsigned(ctl)
		if err != nil {
			t.Fatal(err)
		}
		c, err := catalog.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if c.Signed || len(c.Members) != 1 {
			t.Fatalf("Signed %v, %d members", c.Signed, len(c.Members))
		}
		if _, v, err := c.Verify(authenticode.VerifyOptions{}); !errors.Is(err, catalog.ErrUnsigned) || v != nil {
			t.Fatalf("Verify = %v, %v; want ErrUnsigned", v, err)
		}
	})
	t.Run("member changed", func(t *testing.T) {
		der := bytes.Clone(good)
		der[indexOf(der, e.Digest)] ^= 0x80
		c, err := catalog.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if _, v, err := c.Verify(authenticode.VerifyOptions{}); !errors.Is(err, signing.ErrSignedAttributes) || v != nil {
			t.Fatalf("Verify = %v, %v; want ErrSignedAttributes", v, err)
		}
	})
	t.Run("signature changed", func(t *testing.T) {
		c, err := catalog.Parse(good)
		if err != nil {
			t.Fatal(err)
		}
		sigs, _, err := c.Verify(authenticode.VerifyOptions{})
		if err != nil {
			t.Fatal(err)
		}
		der := bytes.Clone(good)
		// The RSA signature's last byte is the file's last byte.
		der[len(der)-1] ^= 1
		if c, err = catalog.Parse(der); err != nil {
			t.Fatal(err)
		}
		if _, v, err := c.Verify(authenticode.VerifyOptions{}); !errors.Is(err, signing.ErrSignature) || v != nil {
			t.Fatalf("Verify = %v, %v; want ErrSignature (signature %d bytes)", v, err, len(sigs))
		}
	})
	t.Run("another list signed", func(t *testing.T) {
		// A signature over another list, put on this catalog's list: the
		// content is what the signature signs, so the list is its.
		other := p.signedCatalog(t, 2, entry(t, "b.exe", testbin.PE(testbin.PEOptions{Data: []byte("b")}), crypto.SHA256))
		c1, _ := catalog.Parse(good)
		c2, _ := catalog.Parse(other)
		der := bytes.Replace(other, c2.CTL(), c1.CTL(), 1)
		if len(c1.CTL()) != len(c2.CTL()) {
			t.Skip("lists of different sizes")
		}
		c, err := catalog.Parse(der)
		if err != nil {
			t.Fatal(err)
		}
		if _, v, err := c.Verify(authenticode.VerifyOptions{}); !errors.Is(err, signing.ErrSignedAttributes) || v != nil {
			t.Fatalf("Verify = %v, %v; want ErrSignedAttributes", v, err)
		}
	})
	t.Run("PE signature is not a catalog", func(t *testing.T) {
		// An Authenticode signature over a PE file, given as a catalog.
		s := p.signer(t, authenticode.SignOptions{})
		der, err := s.SignDigest(context.Background(), e.Digest, new(pe.Table).IndirectData())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := catalog.Parse(der); !errors.Is(err, signing.ErrMalformed) {
			t.Fatalf("Parse = %v, want ErrMalformed", err)
		}
	})
}

// TestParseRefuses: malformed lists, each with the reason.
func TestParseRefuses(t *testing.T) {
	entryA := catalog.Entry{Name: "a", Kind: catalog.KindFlat, Hash: crypto.SHA256, Digest: bytes.Repeat([]byte{1}, 32)}
	ctl, err := catalog.Build([]catalog.Entry{entryA}, catalog.BuildOptions{ThisUpdate: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	wrap := func(ctl []byte) []byte {
		der, err := catalog.Unsigned(ctl)
		if err != nil {
			t.Fatal(err)
		}
		return der
	}
	if _, err := catalog.Parse(wrap(ctl)); err != nil {
		t.Fatalf("the good list: %v", err)
	}
	replace := func(old, new []byte) []byte {
		if !bytes.Contains(ctl, old) {
			t.Fatalf("%X not in the list", old)
		}
		return bytes.Replace(ctl, old, new, 1)
	}
	for _, tc := range []struct {
		name string
		der  []byte
		want error
	}{
		{"not a catalog list", replace(catalog.OIDCatalogList, cms.NewOID(1, 3, 6, 1, 4, 1, 311, 10, 3, 9)), signing.ErrMalformed},
		{"unknown member version", replace(catalog.OIDCatalogMemberV2, cms.NewOID(1, 3, 6, 1, 4, 1, 311, 12, 1, 9)), signing.ErrMalformed},
		{"digest of another size than its algorithm's", replace(cms.NewOID(2, 16, 840, 1, 101, 3, 4, 2, 1), cms.NewOID(2, 16, 840, 1, 101, 3, 4, 2, 2)), signing.ErrMalformed},
		{"unknown digest algorithm", replace(cms.NewOID(2, 16, 840, 1, 101, 3, 4, 2, 1), cms.NewOID(2, 16, 840, 1, 101, 3, 4, 2, 99)), signing.ErrMalformed},
		{"trailing data", reseq(t, ctl, []byte{0x05, 0x00}), signing.ErrMalformed},
		{"v2 list version", reseqFront(t, ctl, []byte{0x02, 0x01, 0x01}), signing.ErrMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := catalog.Parse(wrap(tc.der))
			if !errors.Is(err, tc.want) {
				t.Fatalf("Parse = %v, want %v", err, tc.want)
			}
			var me *signing.MalformedError
			if !errors.As(err, &me) || me.Offset <= 0 {
				t.Fatalf("Parse = %v, want a MalformedError with an offset", err)
			}
		})
	}
}

// reseq appends extra inside the list's outer SEQUENCE.
func reseq(t *testing.T, ctl, extra []byte) []byte {
	t.Helper()
	s := cryptobyte.String(ctl)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) {
		t.Fatal("bad list")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(body)
		b.AddBytes(extra)
	})
	return b.BytesOrPanic()
}

// reseqFront puts extra first inside the list's outer SEQUENCE.
func reseqFront(t *testing.T, ctl, extra []byte) []byte {
	t.Helper()
	s := cryptobyte.String(ctl)
	var body cryptobyte.String
	if !s.ReadASN1(&body, cbasn1.SEQUENCE) {
		t.Fatal("bad list")
	}
	b := cryptobyte.NewBuilder(nil)
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(extra)
		b.AddBytes(body)
	})
	return b.BytesOrPanic()
}

// TestMembersCap: a list with more members than limits.MaxCatalogMembers
// is refused with ErrLimit (Build refuses to write one).
func TestMembersCap(t *testing.T) {
	entries := make([]catalog.Entry, limits.MaxCatalogMembers+1)
	if _, err := catalog.Build(entries, catalog.BuildOptions{}); !errors.Is(err, signing.ErrLimit) {
		t.Fatalf("Build = %v, want ErrLimit", err)
	}
}

// TestNestedSignatures: a signature nested in a catalog's (as a second
// signer adds one) is verified over the same list; one over another list
// does not verify (the catalog itself still does: its own signature
// admits).
func TestNestedSignatures(t *testing.T) {
	p := newPKI(t)
	s := p.signer(t, authenticode.SignOptions{})
	e := entry(t, "a.exe", testbin.PE(testbin.PEOptions{}), crypto.SHA256)
	ctl, err := catalog.Build([]catalog.Entry{e}, catalog.BuildOptions{ThisUpdate: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	other, err := catalog.Build([]catalog.Entry{entry(t, "b.exe", testbin.PE(testbin.PEOptions{Data: []byte("b")}), crypto.SHA256)}, catalog.BuildOptions{ThisUpdate: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	outer, err := catalog.Sign(context.Background(), s, ctl)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		inner []byte
		want  error
	}{
		{"same list", ctl, nil},
		{"another list", other, signing.ErrDigestMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inner, err := catalog.Sign(context.Background(), s, tc.inner)
			if err != nil {
				t.Fatal(err)
			}
			der, err := authenticode.Nest(outer, inner)
			if err != nil {
				t.Fatal(err)
			}
			c, err := catalog.Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			sigs, v, err := c.Verify(authenticode.VerifyOptions{})
			if err != nil || v == nil || len(sigs) != 2 || !slices.Equal(sigs[1].Path, []int{0}) {
				t.Fatalf("Verify = %d signatures, %v, %v", len(sigs), v, err)
			}
			if tc.want == nil {
				if !sigs[1].Verified() {
					t.Fatalf("nested signature: %v", sigs[1].Problem)
				}
			} else if sigs[1].Verified() || !errors.Is(sigs[1].Problem, tc.want) {
				t.Fatalf("nested signature over another list: %v, want %v", sigs[1].Problem, tc.want)
			}
		})
	}
}

// TestTagMustBeDigest has a member whose tag is not its digest: Windows
// looks a file's member up by that tag (the file's hash in hex) before it
// compares the SPC_INDIRECT_DATA digest, so the member, signed as it is,
// admits nothing; the same catalog with the tag in lower case admits.
func TestTagMustBeDigest(t *testing.T) {
	p := newPKI(t)
	e := entry(t, "a.exe", testbin.PE(testbin.PEOptions{Data: []byte("tagged")}), crypto.SHA256)
	ctl, err := catalog.Build([]catalog.Entry{e}, catalog.BuildOptions{ThisUpdate: testca.Epoch})
	if err != nil {
		t.Fatal(err)
	}
	utf16 := func(s string) []byte {
		var b []byte
		for _, r := range s {
			b = append(b, byte(r), 0)
		}
		return b
	}
	tag := utf16(strings.ToUpper(hex.EncodeToString(e.Digest)))
	if !bytes.Contains(ctl, tag) {
		t.Fatal("the member's tag is not its digest in hex")
	}
	other := sha256.Sum256([]byte("another file"))
	for _, tc := range []struct {
		name  string
		tag   []byte
		admit bool
	}{
		{"as built", tag, true},
		{"lower case", utf16(hex.EncodeToString(e.Digest)), true},
		{"another digest", utf16(strings.ToUpper(hex.EncodeToString(other[:]))), false},
		{"a name", utf16(strings.Repeat("a.exe", 12) + "_dll"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			list := bytes.Replace(ctl, tag, tc.tag, 1)
			der, err := catalog.Sign(context.Background(), p.signer(t, authenticode.SignOptions{}), list)
			if err != nil {
				t.Fatal(err)
			}
			c, err := catalog.Parse(der)
			if err != nil {
				t.Fatal(err)
			}
			_, v, err := c.Verify(authenticode.VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if got := len(v.Lookup(crypto.SHA256, e.Digest)) == 1; got != tc.admit || c.Members[0].Tagged() != tc.admit {
				t.Errorf("member tagged %q admits: %v, want %v", c.Members[0].Tag, got, tc.admit)
			}
		})
	}
}
