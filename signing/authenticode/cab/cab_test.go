package cab_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/codesignval/csv/internal/testca"
	"github.com/codesignval/csv/internal/testenv"
	"github.com/codesignval/csv/signing"
	"github.com/codesignval/csv/signing/authenticode"
	"github.com/codesignval/csv/signing/authenticode/cab"
)

// data returns n pseudo-random bytes from seed, runs of one byte among
// them (as a binary's padding).
func data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := 0; i < n; {
		run := min(1+r.IntN(300), n-i)
		c := byte(r.IntN(256))
		for j := range run {
			if r.IntN(2) == 0 {
				b[i+j] = c
			} else {
				b[i+j] = byte(r.Uint32())
			}
		}
		i += run
	}
	return b
}

// cabinets makes cabinets with gcab from generated files: uncompressed
// and MSZIP.
func cabinets(t testing.TB) map[string][]byte {
	t.Helper()
	gcab := testenv.Tool(t, "gcab")
	out := map[string][]byte{}
	for name, args := range map[string][]string{"none": {"-c"}, "mszip": {"-c", "-z"}} {
		dir := t.TempDir()
		for f, b := range map[string][]byte{"app.exe": data(1, 120_000), "lib/x.dll": data(2, 40_000), "readme.txt": []byte("hello\r\n")} {
			p := filepath.Join(dir, f)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		cmd := exec.Command(gcab, append(args, filepath.Join(dir, "out.cab"), "app.exe", "lib/x.dll", "readme.txt")...)
		cmd.Dir = dir
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("gcab: %v\n%s", err, b)
		}
		b, err := os.ReadFile(filepath.Join(dir, "out.cab"))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = b
	}
	return out
}

type pki struct {
	ca    *testca.CA
	leaf  *testca.Cert
	files testca.Files
	certs []*signing.Certificate
}

func newPKI(t testing.TB) *pki {
	t.Helper()
	ca := testca.New(t)
	leaf := ca.Leaf(t, testca.LeafOptions{})
	p := &pki{ca: ca, leaf: leaf, files: ca.WriteFiles(t, t.TempDir(), leaf)}
	sc, err := signing.ParseCertificate(ca.Root.Cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	p.certs = []*signing.Certificate{sc}
	return p
}

func (p *pki) signer(t testing.TB, appendSig bool) *authenticode.Signer {
	t.Helper()
	s, err := authenticode.NewSigner(p.leaf.Key, []*x509.Certificate{p.leaf.Cert, p.ca.Intermediate.Cert}, authenticode.SignOptions{Append: appendSig})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// wbuf is an in-memory Output.
type wbuf struct{ b []byte }

func (w *wbuf) Write(p []byte) (int, error) { w.b = append(w.b, p...); return len(p), nil }
func (w *wbuf) WriteAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(len(w.b)) {
		return 0, errors.New("write past the end")
	}
	return copy(w.b[off:], p), nil
}

func csvSign(t testing.TB, p *pki, data []byte, appendSig bool) []byte {
	t.Helper()
	var out wbuf
	if _, err := cab.Sign(context.Background(), bytes.NewReader(data), int64(len(data)), &out, p.signer(t, appendSig)); err != nil {
		t.Fatal(err)
	}
	return out.b
}

// inspect parses b, computes its digests in one pass and verifies it.
func inspect(t testing.TB, b []byte, certs []*signing.Certificate) (*cab.Cabinet, map[crypto.Hash][]byte, []*signing.Signature, error) {
	t.Helper()
	c, err := cab.Parse(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, nil, nil, err
	}
	hs := map[crypto.Hash]hash.Hash{crypto.SHA256: sha256.New(), crypto.SHA1: sha1.New()}
	d := c.NewDigester(hs[crypto.SHA256], hs[crypto.SHA1])
	for i := 0; i < len(b); i += 1000 { // in pieces, as a pass writes
		d.Write(b[i:min(len(b), i+1000)])
	}
	if err := d.Close(); err != nil {
		return c, nil, nil, err
	}
	sums := map[crypto.Hash][]byte{}
	for h, w := range hs {
		sums[h] = w.Sum(nil)
	}
	sigs, err := cab.Verify(c, sums, authenticode.VerifyOptions{Certificates: certs})
	return c, sums, sigs, err
}

func osslEnv() []string {
	return testenv.NoProxyEnv()
}

func osslSign(t testing.TB, p *pki, data []byte, args ...string) []byte {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.cab"), filepath.Join(dir, "out.cab")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		t.Fatal(err)
	}
	argv := append([]string{"sign", "-certs", p.files.Chain, "-key", p.files.Key}, args...)
	argv = append(argv, "-in", in, "-out", out)
	cmd := exec.Command(ossl, argv...)
	cmd.Env = osslEnv()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("osslsigncode %s: %v\n%s", strings.Join(argv, " "), err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var calculated = regexp.MustCompile(`Calculated message digest\s*:\s*([0-9A-Fa-f]+)`)

func osslVerify(t testing.TB, p *pki, data []byte) (bool, []string, string) {
	t.Helper()
	ossl := testenv.Tool(t, "osslsigncode")
	path := filepath.Join(t.TempDir(), "x.cab")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(ossl, "verify", "-CAfile", p.files.Root, "-time", strconv.FormatInt(testca.Epoch.Unix(), 10), "-in", path)
	cmd.Env = osslEnv()
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("running osslsigncode: %v", err)
	}
	var digests []string
	for _, m := range calculated.FindAllStringSubmatch(string(out), -1) {
		digests = append(digests, strings.ToLower(m[1]))
	}
	return err == nil, digests, string(out)
}

// tamper changes one byte of the cabinet's data (a file's bytes).
func tamper(b []byte, c *cab.Cabinet) []byte {
	out := bytes.Clone(b)
	out[c.Header.Size-3] ^= 0x01
	return out
}

// TestPeerSignsCSVVerifies: osslsigncode signs gcab's cabinets; csv finds
// the signature valid over the digest osslsigncode calculates, which is
// the unsigned cabinet's too; a changed byte breaks it for both.
func TestPeerSignsCSVVerifies(t *testing.T) {
	p := newPKI(t)
	for name, data := range cabinets(t) {
		t.Run(name, func(t *testing.T) {
			signed := osslSign(t, p, data)
			c, sums, sigs, err := inspect(t, signed, p.certs)
			if err != nil {
				t.Fatal(err)
			}
			if !c.Signed() || len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("signed %v, signatures %+v", c.Signed(), sigs)
			}
			if len(sigs[0].Chains) == 0 || sigs[0].Chains[0][len(sigs[0].Chains[0])-1].SHA256 != p.certs[0].SHA256 {
				t.Errorf("no chain to the root: %+v", sigs[0].Chains)
			}
			if why := sigs[0].IgnoredBy[signing.HostWindows]; why != "" {
				t.Errorf("Windows would not count it: %s", why)
			}
			ok, digests, out := osslVerify(t, p, signed)
			if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(sums[crypto.SHA256]) {
				t.Fatalf("osslsigncode (ok %v) calculated %v, csv %x\n%s", ok, digests, sums[crypto.SHA256], out)
			}
			if _, unsigned, _, err := inspect(t, data, nil); err != nil || !bytes.Equal(unsigned[crypto.SHA256], sums[crypto.SHA256]) {
				t.Errorf("unsigned digest %x (%v), signed %x", unsigned[crypto.SHA256], err, sums[crypto.SHA256])
			}
			bad := tamper(signed, c)
			_, _, sigs, err = inspect(t, bad, p.certs)
			if err != nil || len(sigs) != 1 || sigs[0].Verified() || !errors.Is(sigs[0].Problem, signing.ErrDigestMismatch) {
				t.Errorf("tampered: %v, %+v", err, sigs)
			}
			if ok, _, _ := osslVerify(t, p, bad); ok {
				t.Errorf("osslsigncode accepts the tampered cabinet")
			}
			// A changed byte in the header, in the folders, in the files.
			for _, off := range []int64{26, c.Header.FoldersOffset, c.Header.FilesOffset + 20} {
				bad := bytes.Clone(signed)
				bad[off] ^= 0x01
				if _, _, sigs, err := inspect(t, bad, p.certs); err == nil && len(sigs) == 1 && sigs[0].Verified() {
					t.Errorf("byte %d changed: csv accepts it", off)
				}
				if ok, _, _ := osslVerify(t, p, bad); ok {
					t.Errorf("byte %d changed: osslsigncode accepts it", off)
				}
			}
		})
	}
}

// TestCSVSignsPeerVerifies: what csv signs (a cabinet without a reserve,
// one signed already, and one appended to), osslsigncode verifies with the
// digest csv signed; a changed byte fails both.
func TestCSVSignsPeerVerifies(t *testing.T) {
	p := newPKI(t)
	for name, data := range cabinets(t) {
		t.Run(name, func(t *testing.T) {
			signed := csvSign(t, p, data, false)
			c, sums, sigs, err := inspect(t, signed, p.certs)
			if err != nil || len(sigs) != 1 || !sigs[0].Verified() {
				t.Fatalf("csv: %v %+v", err, sigs)
			}
			if c.Header.Size != int64(len(data))+24 {
				t.Errorf("cabinet of %d bytes signed into %d before the signature", len(data), c.Header.Size)
			}
			ok, digests, out := osslVerify(t, p, signed)
			if !ok || len(digests) != 1 || digests[0] != hex.EncodeToString(sums[crypto.SHA256]) {
				t.Fatalf("osslsigncode refuses (or calculates %v, csv %x):\n%s", digests, sums[crypto.SHA256], out)
			}
			if ok, _, _ := osslVerify(t, p, tamper(signed, c)); ok {
				t.Errorf("osslsigncode accepts the tampered cabinet")
			}
			// csv's reserve is byte for byte osslsigncode's (but for the
			// signature's size), and the rest of the cabinet too.
			theirs := osslSign(t, p, data)
			tc, err := cab.Parse(bytes.NewReader(theirs), int64(len(theirs)))
			if err != nil {
				t.Fatal(err)
			}
			mine, other := bytes.Clone(signed[:c.Header.Size]), bytes.Clone(theirs[:tc.Header.Size])
			binary.LittleEndian.PutUint32(mine[48:], 0)
			binary.LittleEndian.PutUint32(other[48:], 0)
			if !bytes.Equal(mine, other) {
				t.Errorf("csv's signed cabinet differs from osslsigncode's before the signature")
			}
			// Re-signing replaces the signature: the cabinet is unchanged.
			again := csvSign(t, p, signed, false)
			if c2, _, sigs, err := inspect(t, again, p.certs); err != nil || len(sigs) != 1 || !sigs[0].Verified() || !bytes.Equal(again[:c2.Header.Size], signed[:c.Header.Size]) {
				t.Fatalf("re-signed: %v %+v", err, sigs)
			}
			if ok, _, out := osslVerify(t, p, again); !ok {
				t.Errorf("osslsigncode on the re-signed cabinet:\n%s", out)
			}
			// Appending nests csv's signature in osslsigncode's.
			nested := csvSign(t, p, theirs, true)
			_, _, sigs, err = inspect(t, nested, p.certs)
			if err != nil || len(sigs) != 2 || !sigs[0].Verified() || !sigs[1].Verified() || len(sigs[1].Path) != 1 {
				t.Fatalf("nested: %v %+v", err, sigs)
			}
			if sigs[1].IgnoredBy[signing.HostWindows] == "" {
				t.Errorf("a nested signature counts for Windows")
			}
			if ok, _, out := osslVerify(t, p, nested); !ok || !strings.Contains(out, "Number of verified signatures: 2") {
				t.Errorf("osslsigncode on the nested signature:\n%s", out)
			}
		})
	}
}

// TestUncovered: bytes the digest leaves out hold only what signers
// write; anything else makes the cabinet malformed, though the signature
// still verifies over the bytes it covers.
func TestUncovered(t *testing.T) {
	p := newPKI(t)
	data := cabinets(t)["mszip"]
	signed := csvSign(t, p, data, false)
	for name, off := range map[string]int{"reserved1": 5, "iCabinet": 34, "reserve magic": 40, "reserve bytes 12-15": 52} {
		bad := bytes.Clone(signed)
		bad[off] ^= 0x01
		if _, err := cab.Parse(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	// The signature's offset and size must put it at the end.
	for _, off := range []int{44, 48} {
		bad := bytes.Clone(signed)
		bad[off] ^= 0x08
		if _, err := cab.Parse(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, signing.ErrMalformed) {
			t.Errorf("byte %d changed: %v", off, err)
		}
	}
	// Bytes after the signature.
	bad := append(bytes.Clone(signed), 0)
	if _, err := cab.Parse(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, signing.ErrMalformed) {
		t.Errorf("a byte after the signature: %v", err)
	}
}
