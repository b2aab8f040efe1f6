package signing_test

import (
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
)

// TestNameStringOpenSSL: a certificate name with the attributes code
// signing certificates carry (emailAddress, serialNumber, DC, UID, street,
// a value with a comma) prints as openssl x509 -nameopt RFC2253 prints it.
func TestNameStringOpenSSL(t *testing.T) {
	openssl := testenv.Tool(t, "openssl")
	dir := t.TempDir()
	key, crt := filepath.Join(dir, "k.pem"), filepath.Join(dir, "c.pem")
	subj := "/DC=com/DC=example/C=DE/ST=Bayern/L=Munich/street=Main St 1/postalCode=80331/O=Example, Inc./OU=Build/title=Eng/UID=u1/serialNumber=HRB 1234/CN=Build Signing/emailAddress=ops@example.com"
	for _, args := range [][]string{
		{"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", crt, "-days", "1", "-subj", subj},
	} {
		if out, err := exec.Command(openssl, args...).CombinedOutput(); err != nil {
			t.Fatalf("openssl %v: %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command(openssl, "x509", "-in", crt, "-noout", "-subject", "-nameopt", "RFC2253").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := strings.TrimPrefix(strings.TrimSpace(string(out)), "subject=")
	data, err := os.ReadFile(crt)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if got := signing.NameString(c.Subject); got != want {
		t.Errorf("NameString = %q\nopenssl     %q", got, want)
	}
	if got := signing.NameString(c.Issuer); got != want {
		t.Errorf("NameString(issuer) = %q, want %q", got, want)
	}
	if strings.Contains(want, "1.2.840") || !strings.Contains(want, "emailAddress=ops@example.com") {
		t.Errorf("openssl printed %q: the test's premise does not hold", want)
	}
}

// TestNameStringEscapes: special characters, control characters, names
// built in Go (no Names) and values that are not strings.
func TestNameStringEscapes(t *testing.T) {
	for _, tc := range []struct {
		name string
		n    pkix.Name
		want string
	}{
		{"built", pkix.Name{CommonName: "a", Organization: []string{"b"}, Country: []string{"DE"}}, "CN=a,O=b,C=DE"},
		{"specials", pkix.Name{CommonName: " #a,b+c\"d\\e<f>g;h "}, `CN=\ #a\,b\+c\"d\\e\<f\>g\;h\ `},
		{"control", pkix.Name{CommonName: "a\nb\x7f"}, `CN=a\0Ab\7F`},
		{"unknown", pkix.Name{Names: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{1, 2, 3}, Value: "x"}}}, "1.2.3=#130178"},
		{"not a string", pkix.Name{Names: []pkix.AttributeTypeAndValue{{Type: asn1.ObjectIdentifier{2, 5, 4, 3}, Value: 5}}}, "CN=#020105"},
	} {
		if got := signing.NameString(tc.n); got != tc.want {
			t.Errorf("%s: NameString = %q, want %q", tc.name, got, tc.want)
		}
	}
}
